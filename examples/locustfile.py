"""Load a memsim server from Locust: the allocator, the cache and the VM at once.

    memsim serve --port 50051 &
    locust -f examples/locustfile.py --host 127.0.0.1:50051                     # the web UI on :8089
    locust -f examples/locustfile.py --host 127.0.0.1:50051 --headless -u 8 -r 8 -t 30s
    locust -f examples/locustfile.py --host 127.0.0.1:50051 --headless -u 8 -r 8 -t 30s --processes 2

Needs the `locust` extra (pip install "memsim[locust]"). The User classes are memsim.tools.locust_users';
a locustfile picks the services and their weights, and may change any class attribute (key range,
value size, pages, live objects). Each Locust request is one client call, named by its operation.
"""

from __future__ import annotations

from memsim.tools.locust_users import AllocatorUser, CacheUser, VMUser


class Allocator(AllocatorUser):
    weight = 1
    max_live = 32


class CacheGetSet(CacheUser):
    weight = 2
    keys = 2000
    value_size = 128


class VirtualMemory(VMUser):
    weight = 1
    pages = 32
