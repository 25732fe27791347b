/* Python binding for bigupload._native: stateless CRC functions over any contiguous
 * buffer, combine functions, and a report of the implementation chosen at import.
 * The GIL is released for buffers of 64 KiB and more, so parts hash in parallel. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "crc.h"

#define GIL_RELEASE_BYTES (64 * 1024)

void crc32c_sse42_init(void);

static const char *impl_names[] = {"sw", "sse42", "pclmul", "avx512"};

static int impl_available(const crc_model *m, crc_impl impl)
{
    switch (impl) {
    case IMPL_SW:
        return 1;
#if defined(__x86_64__)
    case IMPL_SSE42:
        return m == &crc_model_crc32c && cpu.sse42;
    case IMPL_PCLMUL:
        return cpu.pclmul;
    case IMPL_AVX512:
        return cpu.pclmul && cpu.avx512 && cpu.vpclmul;
#endif
    default:
        return 0;
    }
}

static void choose_impl(crc_model *m)
{
    static const crc_impl preference[] = {IMPL_AVX512, IMPL_SSE42, IMPL_PCLMUL, IMPL_SW};
    for (size_t i = 0; i < sizeof preference / sizeof preference[0]; i++)
        if (impl_available(m, preference[i])) {
            m->impl = preference[i];
            return;
        }
}

static int parse_value(const crc_model *m, PyObject *obj, uint64_t *out)
{
    if (obj == NULL) {
        *out = 0;
        return 0;
    }
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s value must be an int", m->name);
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(obj);
    if ((v == (unsigned long long)-1 && PyErr_Occurred()) || v > m->mask) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s value must be in 0..2**%d-1", m->name, m->width);
        return -1;
    }
    *out = v;
    return 0;
}

static PyObject *compute(crc_model *m, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"data", "value", NULL};
    Py_buffer buf;
    PyObject *value_obj = NULL;
    uint64_t value;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*|O", kwlist, &buf, &value_obj))
        return NULL;
    if (parse_value(m, value_obj, &value) < 0) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    uint64_t reg = value ^ m->mask;
    if (buf.len >= GIL_RELEASE_BYTES) {
        Py_BEGIN_ALLOW_THREADS
        reg = crc_update(m, reg, buf.buf, (size_t)buf.len);
        Py_END_ALLOW_THREADS
    } else {
        reg = crc_update(m, reg, buf.buf, (size_t)buf.len);
    }
    PyBuffer_Release(&buf);
    return PyLong_FromUnsignedLongLong(reg ^ m->mask);
}

static PyObject *combine(crc_model *m, PyObject *args)
{
    PyObject *a_obj, *b_obj;
    long long len_b;
    uint64_t a, b;
    if (!PyArg_ParseTuple(args, "OOL", &a_obj, &b_obj, &len_b))
        return NULL;
    if (parse_value(m, a_obj, &a) < 0 || parse_value(m, b_obj, &b) < 0)
        return NULL;
    if (len_b < 0) {
        PyErr_SetString(PyExc_ValueError, "len_b must be >= 0");
        return NULL;
    }
    return PyLong_FromUnsignedLongLong(crc_combine(m, a, b, (uint64_t)len_b));
}

#define CRC_FUNCS(NAME)                                                              \
    static PyObject *py_##NAME(PyObject *self, PyObject *args, PyObject *kwargs)     \
    {                                                                                \
        return compute(&crc_model_##NAME, args, kwargs);                             \
    }                                                                                \
    static PyObject *py_##NAME##_combine(PyObject *self, PyObject *args)             \
    {                                                                                \
        return combine(&crc_model_##NAME, args);                                     \
    }

CRC_FUNCS(crc32)
CRC_FUNCS(crc32c)
CRC_FUNCS(crc64nvme)

static crc_model *models[] = {&crc_model_crc32, &crc_model_crc32c, &crc_model_crc64nvme};

static crc_model *model_named(const char *name)
{
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
        if (strcmp(models[i]->name, name) == 0)
            return models[i];
    PyErr_Format(PyExc_ValueError, "unknown algorithm %s", name);
    return NULL;
}

static PyObject *py_backend(PyObject *self, PyObject *unused)
{
    PyObject *d = PyDict_New();
    for (size_t i = 0; d && i < sizeof models / sizeof models[0]; i++) {
        PyObject *v = PyUnicode_FromString(impl_names[models[i]->impl]);
        if (!v || PyDict_SetItemString(d, models[i]->name, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(v);
    }
    return d;
}

static PyObject *py_implementations(PyObject *self, PyObject *args)
{
    const char *name;
    if (!PyArg_ParseTuple(args, "s", &name))
        return NULL;
    crc_model *m = model_named(name);
    if (!m)
        return NULL;
    PyObject *list = PyList_New(0);
    for (int i = IMPL_SW; list && i <= IMPL_AVX512; i++)
        if (impl_available(m, (crc_impl)i)) {
            PyObject *s = PyUnicode_FromString(impl_names[i]);
            if (!s || PyList_Append(list, s) < 0) {
                Py_XDECREF(s);
                Py_DECREF(list);
                return NULL;
            }
            Py_DECREF(s);
        }
    return list;
}

static PyObject *py_set_implementation(PyObject *self, PyObject *args)
{
    const char *name, *impl;
    if (!PyArg_ParseTuple(args, "ss", &name, &impl))
        return NULL;
    crc_model *m = model_named(name);
    if (!m)
        return NULL;
    for (int i = IMPL_SW; i <= IMPL_AVX512; i++)
        if (strcmp(impl_names[i], impl) == 0) {
            if (!impl_available(m, (crc_impl)i))
                break;
            const char *previous = impl_names[m->impl];
            m->impl = (crc_impl)i;
            return PyUnicode_FromString(previous);
        }
    PyErr_Format(PyExc_ValueError, "implementation %s is not available for %s", impl, name);
    return NULL;
}

static PyObject *py_cpu_features(PyObject *self, PyObject *unused)
{
    return Py_BuildValue("{s:O,s:O,s:O,s:O}", "sse4.2", cpu.sse42 ? Py_True : Py_False,
                         "pclmulqdq", cpu.pclmul ? Py_True : Py_False, "avx512", 
                         cpu.avx512 ? Py_True : Py_False, "vpclmulqdq",
                         cpu.vpclmul ? Py_True : Py_False);
}

#define KW (PyCFunction)(void (*)(void))
static PyMethodDef methods[] = {
    {"crc32", KW py_crc32, METH_VARARGS | METH_KEYWORDS, "crc32(data, value=0) -> int (zlib CRC-32)"},
    {"crc32c", KW py_crc32c, METH_VARARGS | METH_KEYWORDS, "crc32c(data, value=0) -> int (Castagnoli)"},
    {"crc64nvme", KW py_crc64nvme, METH_VARARGS | METH_KEYWORDS, "crc64nvme(data, value=0) -> int"},
    {"crc32_combine", py_crc32_combine, METH_VARARGS, "crc32_combine(crc_a, crc_b, len_b) -> CRC of a||b"},
    {"crc32c_combine", py_crc32c_combine, METH_VARARGS, "crc32c_combine(crc_a, crc_b, len_b) -> CRC of a||b"},
    {"crc64nvme_combine", py_crc64nvme_combine, METH_VARARGS, "crc64nvme_combine(crc_a, crc_b, len_b)"},
    {"backend", py_backend, METH_NOARGS, "backend() -> {algorithm: implementation in use}"},
    {"implementations", py_implementations, METH_VARARGS, "implementations(algorithm) -> usable names"},
    {"set_implementation", py_set_implementation, METH_VARARGS,
     "set_implementation(algorithm, impl) -> previous; for tests and benchmarks"},
    {"cpu_features", py_cpu_features, METH_NOARGS, "cpu_features() -> dict of detected features"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "_native",
                                       "SIMD CRC32C / CRC32 / CRC64NVME for bigupload.", -1,
                                       methods};

PyMODINIT_FUNC PyInit__native(void)
{
    cpu_detect();
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        crc_model_init(models[i]);
        choose_impl(models[i]);
    }
#if defined(__x86_64__)
    crc32c_sse42_init();
#endif
    return PyModule_Create(&moduledef);
}
