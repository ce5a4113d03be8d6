"""OutputRing eviction used by the retained-output quotas (no event loop)."""

from __future__ import annotations

from exec_server.processes import OutputRing


def test_evict_oldest_frees_whole_chunks_and_keeps_the_newest() -> None:
    ring = OutputRing(1 << 20)
    for data in (b"a" * 10, b"b" * 10, b"c" * 10):
        ring.append("stdout", data)
    assert ring.evict_oldest(15) == 20  # whole chunks only
    assert ring.size == 10 and ring.retained_from_seq == 3
    assert ring.evict_oldest(100) == 0  # the newest chunk stays
    assert [c.data for c in ring.read(0, None).chunks] == [b"c" * 10]


def test_evict_all_empties_the_ring_but_keeps_seqs() -> None:
    ring = OutputRing(1 << 20)
    ring.append("stdout", b"x" * 5)
    ring.append("stderr", b"y" * 7)
    exit_seq = ring.next()
    assert ring.evict_all() == 12
    assert ring.size == 0 and ring.read(0, None).chunks == []
    assert ring.retained_from_seq == 3 and ring.next_seq == exit_seq + 1
    assert ring.evict_all() == 0
