"""Only the C extension lives here; all other metadata is in pyproject.toml."""
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
        )
    ]
)
