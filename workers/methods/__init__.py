"""One module per SSL method, behind the small interface in base.py.

A method's settings name its class as (module, class) (contract.methods), which
`base.implementation` imports on the worker, so an extension's method can live in its own
package. The shipped methods are imported here, with the package: a worker has all of them
loaded before its first job, and a broken one fails on import, not in the middle of a sweep.
"""

from workers.methods import bigan, deepcluster, random_init, rotnet, supervised  # noqa: F401
