"""The copy/build script CodeBuild runs; see :mod:`hubmirror.runner.job`."""
