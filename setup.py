"""Build of the optional C fast path; all other metadata lives in pyproject.toml.

``optional=True``: where no C compiler is available the build goes on without the extension and
the solvers use their pure-Python loops.
"""

import sys

from setuptools import Extension, setup

COMPILE_ARGS = [] if sys.platform == "win32" else ["-O3", "-fno-strict-aliasing"]

setup(
    ext_modules=[
        Extension(
            "cracker.solvers.pow._native._sha256pow",
            sources=["src/cracker/solvers/pow/_native/sha256pow.c"],
            extra_compile_args=COMPILE_ARGS,
            optional=True,
        )
    ]
)
