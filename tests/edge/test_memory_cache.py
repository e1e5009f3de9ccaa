"""The edge's microcache in memory (infra/nginx.py): a folder on the tmpfs at
/dev/shm, linked from `<prefix>/cache`, removed when the edge stops; on disk when
there is no tmpfs with room, or when it is turned off."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import httpx
import pytest

from edge.render import EdgeConfig
from infra.nginx import (
    MEMORY_FS,
    MEMORY_HOLDER_PREFIX,
    LocalNginx,
    free_port,
    memory_room,
    size_bytes,
    sweep_memory_holders,
)
from load.stack import memory_files_bytes
from tests.edge.conftest import hostport, start_edge
from tests.services import ApiServer

needs_tmpfs = pytest.mark.skipif(
    memory_room(MEMORY_FS) < 2 * size_bytes(EdgeConfig(0, []).cache_max_size),
    reason="no tmpfs with room at /dev/shm",
)


def test_nginx_sizes() -> None:
    assert size_bytes("256m") == 256 * 1024**2
    assert size_bytes("64K") == 64 * 1024
    assert size_bytes("1g") == 1024**3
    assert size_bytes("4096") == 4096


@needs_tmpfs
def test_cached_answers_live_in_memory_and_go_when_the_edge_stops(api: ApiServer) -> None:
    """From a private folder (a clone in a home folder, mode 0700): as root the workers
    run as `nobody` and still store and serve the cached answer from memory."""
    home = Path(tempfile.mkdtemp(prefix="conectades-home-"))
    link = home / "edge" / "cache"
    try:
        edge = start_edge(home / "edge", [hostport(api.url)])
        try:
            cache = edge.memory_cache_dir()
            assert cache is not None and cache.parent.parent == MEMORY_FS
            assert link.is_symlink() and link.resolve() == cache
            assert f"proxy_cache_path {cache} " in edge.conf_path.read_text()
            visitor = httpx.HTTPTransport(local_address="127.0.0.61")
            with httpx.Client(base_url=edge.url, transport=visitor, timeout=10) as c:
                first, second = c.get("/api/public/campaigns"), c.get("/api/public/campaigns")
            assert first.status_code == 200 and second.status_code == 200
            assert second.headers["X-Cache-Status"] == "HIT"
            assert [p for p in cache.rglob("*") if p.is_file()], "no cached file in memory"
            assert memory_files_bytes(link) >= len(second.content)
        finally:
            edge.stop()
            edge.remove_worker_paths()
        assert not cache.parent.exists() and not link.exists() and not link.is_symlink()
        # Started again: a new folder in memory, gone again with the edge.
        edge.start()
        again = edge.memory_cache_dir()
        assert again is not None and again.parent.is_dir()
        edge.stop()
        assert not again.parent.exists()
    finally:
        edge.stop()
        edge.remove_worker_paths()
        shutil.rmtree(home, ignore_errors=True)


def test_without_a_tmpfs_with_room_or_when_turned_off_the_cache_is_on_disk(
    tmp_path: Path,
) -> None:
    plain = tmp_path / "not-a-tmpfs"
    plain.mkdir()
    for options in ({"memory_fs": plain}, {"memory_cache": False}):
        prefix = tmp_path / f"edge-{len(options)}-{next(iter(options))}"
        edge = LocalNginx(
            EdgeConfig(listen_port=free_port(), upstreams=["127.0.0.1:9"], prefix=prefix),
            **options,  # type: ignore[arg-type]
        )
        edge.prepare()
        text = edge.conf_path.read_text()
        edge.remove_worker_paths()  # as root in a private folder it went to /var/tmp
        assert edge.memory_cache_dir() is None
        assert f"proxy_cache_path {MEMORY_FS}/" not in text
        assert f"proxy_cache_path {edge.config.cache_path.resolve()} " in text
    assert list(plain.iterdir()) == []


def test_a_cache_folder_named_in_the_config_is_kept(tmp_path: Path) -> None:
    chosen = tmp_path / "my-cache"
    edge = LocalNginx(
        EdgeConfig(
            listen_port=free_port(), upstreams=["127.0.0.1:9"], prefix=tmp_path, cache_dir=chosen
        )
    )
    edge.prepare()
    text = edge.conf_path.read_text()
    edge.remove_worker_paths()
    assert edge.memory_cache_dir() is None and f"proxy_cache_path {MEMORY_FS}/" not in text
    # (as root in a private folder, such as pytest's, it is moved to /var/tmp instead)
    assert f"proxy_cache_path {edge.config.cache_path} " in text


def test_the_sweep_removes_only_memory_caches_whose_edge_is_gone(tmp_path: Path) -> None:
    root = tmp_path / "shm"
    root.mkdir()

    def holder(name: str, link: Path) -> Path:
        h = root / f"{MEMORY_HOLDER_PREFIX}{name}"
        (h / "cache").mkdir(parents=True)
        (h / "owner").write_text(str(link))
        return h

    live_link = tmp_path / "a" / "cache"
    live = holder("live", live_link)
    live_link.parent.mkdir()
    live_link.symlink_to(live / "cache")
    gone = holder("gone", tmp_path / "b" / "cache")  # its var/ was deleted
    moved_link = tmp_path / "c" / "cache"
    moved = holder("moved", moved_link)
    moved_link.parent.mkdir()
    moved_link.symlink_to(live / "cache")  # that edge has another folder now
    bare = root / f"{MEMORY_HOLDER_PREFIX}bare"  # no owner file
    bare.mkdir()
    other = root / "someone-else"
    other.mkdir()
    assert sweep_memory_holders(root, older_than=3600) == 0  # all too young to judge
    assert sweep_memory_holders(root, older_than=0) == 3
    assert live.exists() and other.exists()
    assert not gone.exists() and not moved.exists() and not bare.exists()


@needs_tmpfs
def test_memory_files_count_on_a_tmpfs_only(tmp_path: Path) -> None:
    on_disk = tmp_path / "cache"
    on_disk.mkdir()
    (on_disk / "entry").write_bytes(b"x" * 10_000)
    assert memory_files_bytes(on_disk) == 0
    assert memory_files_bytes(tmp_path / "missing") == 0 and memory_files_bytes(None) == 0
    in_memory = Path(tempfile.mkdtemp(prefix="conectades-test-", dir=MEMORY_FS))
    try:
        (in_memory / "a" / "b").mkdir(parents=True)
        (in_memory / "a" / "b" / "entry").write_bytes(b"x" * 10_000)
        link = tmp_path / "link"
        link.symlink_to(in_memory)
        assert memory_files_bytes(link) >= 10_000
    finally:
        shutil.rmtree(in_memory)


def test_a_link_to_a_memory_cache_that_is_gone_falls_back_to_disk(tmp_path: Path) -> None:
    """A reboot empties /dev/shm and leaves var/edge/cache linking nowhere; with no
    room for a new folder there, nginx must get a folder on disk, not the dead link
    (its mkdir of the missing folder's child failed, and the edge did not start)."""
    memory = tmp_path / "shm"  # not a tmpfs: no room for a new memory cache
    memory.mkdir()
    prefix = tmp_path / "edge"
    prefix.mkdir()
    (prefix / "cache").symlink_to(memory / f"{MEMORY_HOLDER_PREFIX}gone" / "cache")
    edge = LocalNginx(
        EdgeConfig(listen_port=free_port(), upstreams=["127.0.0.1:9"], prefix=prefix),
        memory_fs=memory,
    )
    edge.prepare()  # renders, and nginx -t creates the cache folder: it must succeed
    edge.remove_worker_paths()
    assert not (prefix / "cache").is_symlink()
    assert str(memory) not in edge.conf_path.read_text()
