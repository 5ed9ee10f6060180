"""Build hook for the one compiled module (the tar header scanner).

Everything else is in pyproject.toml. The extension is optional: without a C
compiler the install still succeeds and the reader uses its numpy fallback
(``analyzer/sources/tarscan.py``), only slower.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("analyzer.sources._ctarscan", ["analyzer/sources/_ctarscan.c"],
                             optional=True, extra_compile_args=["-O3"])])
