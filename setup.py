"""Only the C extension lives here; all other metadata is in pyproject.toml.

The extension is optional: where it cannot be compiled (no C compiler), setuptools warns
and installs without it, and bigupload.checksum falls back per algorithm to the crc32c
package, zlib and pure Python, with a warning at run time saying which backend runs."""
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "bigupload._native",
            sources=[
                "native/module.c",
                "native/cpu.c",
                "native/crc_sw.c",
                "native/crc_combine.c",
                "native/crc_fold_x86.c",
                "native/crc32c_x86.c",
            ],
            depends=["native/crc.h"],
            extra_compile_args=["-O3", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
