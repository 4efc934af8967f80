"""The managed heap's first example: an Employee built inside a function's frame, orphaned when the
frame returns, and collected by the next GC: heapUsed falls by exactly the objects that died.

The JavaScript it plays out (node --expose-gc):

    function calculateBonus() {
      const emp = { name: "Ann", salary: 5000, sales: [1200, 3400, 800] };
      return emp.salary / 10 + emp.sales.reduce((a, b) => a + b) / 20;
    }
    calculateBonus();     // emp, its name and its sales array are garbage now
    global.gc();          // ... and gone: process.memoryUsage().heapUsed falls

Run it against a server (`memsim serve`): python examples/employee.py [HOST:PORT]
"""

from __future__ import annotations

import sys

from memsim.client import Isolate, V8Client


def calculate_bonus(iso: Isolate) -> int:
    with iso.scope():  # the function's frame: a HandleScope, whose handles are roots until it closes
        sales = iso.new_object([1200, 3400, 800])  # the array: three Smis
        emp = iso.new_object([iso.new_string(b"Ann"), 5000, sales])  # { name, salary, sales }
        salary = iso.get_field(emp, 1)
        total = sum(iso.get_field(sales, i) for i in range(3))
        return salary // 10 + total // 20
    # the frame has returned: nothing reaches emp, its name or its sales any more


def main(target: str = "127.0.0.1:50051") -> tuple[int, int, int]:
    with V8Client(target) as v8:
        iso = v8.create_isolate()
        before = iso.memory_usage()["heapUsed"]
        bonus = calculate_bonus(iso)
        orphaned = iso.memory_usage()["heapUsed"]
        gc = iso.gc()  # global.gc(): a full Mark-Compact
        after = iso.memory_usage()["heapUsed"]
        print(f"bonus {bonus}; heapUsed {before} B, {orphaned} B after calculateBonus(), {after} B after the GC")
        print(gc.line)  # as node --trace-gc prints it
        return before, orphaned, after


if __name__ == "__main__":
    main(*sys.argv[1:2])
