"""The monitors in-process: a subscriber's bound and its count of lost records, the feed's switch
(the command path and the MMU path are fed only while someone subscribes), and what the cache's
commands and a space's accesses record."""

from __future__ import annotations

import linecache
import sys
from collections.abc import Callable
from types import FrameType

import pytest

from memsim.sim.cache.commands import Commands
from memsim.sim.cache.monitor import CommandMonitor
from memsim.sim.errors import InvalidArgument, ResourceExhausted
from memsim.sim.trace.chunk import Op, key_id
from memsim.sim.trace.monitor import MAX_LIMIT, Feed, Subscriber
from memsim.sim.vm.mm import MM
from memsim.sim.vm.monitor import PageMonitor

MiB = 1 << 20


def test_subscriber_bound_lost_count_and_close():
    s = Subscriber(limit=3)
    for i in range(5):
        s.add(i, 10 + i, 1, Op.GET)
    chunk, lost = s.drain()
    assert chunk.key.tolist() == [10, 11, 12] and lost == 2
    s.add(9, 99, 4, Op.SET)
    chunk, lost = s.drain()
    assert chunk.key.tolist() == [99] and chunk.size.tolist() == [4] and lost == 0
    s.close()
    s.add(10, 1, 1, Op.GET)  # after close: taken by no one
    assert len(s.drain()[0]) == 0
    with pytest.raises(ValueError):
        Subscriber(limit=0)


def test_feed_switches_on_first_and_off_after_last():
    seen: list[bool] = []
    f = Feed(seen.append)
    a = f.subscribe(10)
    b = f.subscribe(10, tag=7)
    f.record(1, 1, Op.GET, tag=3)  # a takes every tag, b only 7
    f.record(2, 1, Op.GET, tag=7)
    assert a.drain()[0].key.tolist() == [1, 2] and b.drain()[0].key.tolist() == [2]
    f.unsubscribe(a)
    f.unsubscribe(b)
    assert seen == [True, False]


def test_a_cores_subscribers_share_one_bound():
    """However many captures open on a core (64 streams may), their buffers together hold MAX_LIMIT records:
    one past it is refused before anything is allocated, and the room comes back when one closes."""
    f = Feed(lambda active: None)
    big = f.subscribe(MAX_LIMIT - 10)
    small = f.subscribe(10)
    with pytest.raises(ResourceExhausted, match="at most"):
        f.subscribe(1)
    f.unsubscribe(big)
    f.unsubscribe(f.subscribe(MAX_LIMIT - 10))
    f.unsubscribe(small)
    assert not f.active


def test_commands_record_one_request_per_key_only_while_subscribed(machine):
    cmds = Commands(machine.keyspace(machine.heap(0)))
    mon = CommandMonitor(cmds)
    cmds.execute([b"SET", b"before", b"x"])
    assert cmds.monitor is None
    sub = mon.subscribe(100)
    assert cmds.monitor is mon
    run = cmds.execute
    run([b"SET", b"k1", b"hello"])
    run([b"GET", b"k1"])
    run([b"GET", b"missing"])
    run([b"MSET", b"a", b"12", b"b", b"3"])
    run([b"MGET", b"a", b"nope"])
    run([b"DEL", b"a", b"b"])
    run([b"EXISTS", b"k1"])
    run([b"PING"])  # names no key: not recorded
    with pytest.raises(InvalidArgument):
        run([b"SET", b"k1"])  # refused: not recorded
    chunk, lost = sub.drain()
    assert lost == 0
    ids = [key_id(k) for k in (b"k1", b"k1", b"missing", b"a", b"b", b"a", b"nope", b"a", b"b", b"k1")]
    assert chunk.key.tolist() == ids
    assert chunk.op.tolist() == [Op.SET, Op.GET, Op.GET, Op.SET, Op.SET, Op.GET, Op.GET, Op.DEL, Op.DEL,
                                 Op.READ_META]
    assert chunk.size.tolist() == [5, 5, 1, 2, 1, 2, 1, 1, 1, 1]
    assert (chunk.time[1:] >= chunk.time[:-1]).all()
    mon.unsubscribe(sub)
    assert cmds.monitor is None


def _clear_before_line(owner: Commands | MM, text: str) -> Callable[..., object]:
    """A trace function that sets owner.monitor to None just before a line containing `text` runs: the
    capture's stream thread unsubscribing between the recorder's test for None and its call."""
    def local(frame: FrameType, event: str, arg: object) -> object:
        if event == "line" and text in linecache.getline(frame.f_code.co_filename, frame.f_lineno):
            owner.monitor = None
        return local

    return lambda frame, event, arg: local


def test_a_capture_ending_mid_command_never_fails_the_command(machine):
    """The monitor is cleared by the stream thread without the core's mutex; a command (or an access)
    that tested it before must not then call None: the command ran, and must answer."""
    cmds = Commands(machine.keyspace(machine.heap(0)))
    mon = CommandMonitor(cmds)
    mon.subscribe(10)
    sys.settrace(_clear_before_line(cmds, ".command(name, args, reply)"))
    try:
        reply = cmds.execute([b"SET", b"raced", b"v"])
    finally:
        sys.settrace(None)
    assert reply == "OK" and cmds.execute([b"GET", b"raced"]) == b"v"


@pytest.mark.parametrize("machine", [{"vm_memory": 1 * MiB, "cores": 2}], indirect=True)
def test_a_capture_ending_mid_access_never_fails_the_access(machine):
    vm = machine.vm(0)
    sp = vm.create_space()
    base = vm.mmap(sp, 4096)
    PageMonitor(vm).subscribe(sp, 10)
    sys.settrace(_clear_before_line(vm, ".record(vpn, mm.fs"))
    try:
        vm.store(sp, base, b"z")
    finally:
        sys.settrace(None)
    assert vm.load(sp, base, 1) == b"z"


@pytest.mark.parametrize("machine", [{"vm_memory": 1 * MiB, "cores": 2}], indirect=True)
def test_space_accesses_record_pages_of_the_watched_space(machine):
    vm = machine.vm(0)
    watched, other = vm.create_space(), vm.create_space()
    base = vm.mmap(watched, 8 * 4096)
    obase = vm.mmap(other, 4096)
    mon = PageMonitor(vm)
    sub = mon.subscribe(watched, 100)
    assert vm.monitor is mon.feed
    vm.store(watched, base + 4096 * 2 + 10, b"x" * 4096)  # crosses into the next page: two pages
    vm.load(watched, base, 1)
    vm.store(other, obase, b"y")  # another space: not recorded
    chunk, _ = sub.drain()
    page = 4096
    assert chunk.key.tolist() == [base // page + 2, base // page + 3, base // page]
    assert chunk.op.tolist() == [Op.SET, Op.SET, Op.GET]
    assert set(chunk.size.tolist()) == {page}
    mon.unsubscribe(sub)
    assert vm.monitor is None
