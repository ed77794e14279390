"""django-prometheus's Postgres backend, less a per-request cost that pooling adds.

With OPTIONS["pool"], Django takes a pooled connection at the start of every request
(connect()) and calls get_connection_params() each time, though only the pool's creation
uses them; django-prometheus's version builds a new cursor class per call. That was 190k
of the ~3.4M instructions of a trade request (P7 in docs/benchmarks.md). The parameters
are built once per pool here, so a changed setting that rebuilds the pool rebuilds them.
"""

from __future__ import annotations

import weakref

from django_prometheus.db.backends.postgresql import base

_params_by_pool: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict:
        pool = self._connection_pools.get(self.alias)
        if pool is None:  # no pool, or this call builds it
            return super().get_connection_params()
        params = _params_by_pool.get(pool)
        if params is None:
            params = _params_by_pool[pool] = super().get_connection_params()
        return params
