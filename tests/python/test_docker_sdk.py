"""berth's Engine API through Docker's own Python SDK (PyPI `docker`).

Run by crates/berth/tests/engine_api.rs against a `berth system service` it starts, with
DOCKER_HOST at its socket and busybox:latest imported. Each test_* function runs in
order; the first failure exits non-zero with its traceback. Runs with plain python3 (no
pytest needed): `DOCKER_HOST=unix:///tmp/x/berth.sock python3 tests/python/test_docker_sdk.py`.
"""

import sys
import traceback

import docker
import docker.errors

client = docker.from_env(timeout=120)
PREFIX = "sdk-"


def test_version_and_ping():
    assert client.ping() is True
    v = client.version()
    assert v["ApiVersion"] >= "1.44", v
    assert v["MinAPIVersion"] == "1.24", v
    info = client.info()
    assert info["OSType"] == "linux"


def test_images_are_listed_and_inspected():
    tags = [t for i in client.images.list() for t in i.tags]
    assert "busybox:latest" in tags, tags
    img = client.images.get("busybox")
    assert img.id.startswith("sha256:")
    assert img.attrs["Config"] is not None
    hist = img.history()
    assert len(hist) >= 1


def test_run_collects_output_and_exit_status():
    out = client.containers.run("busybox", ["sh", "-c", "echo hello"], remove=True)
    assert out == b"hello\n", out
    try:
        client.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 4"], remove=True, stderr=True)
    except docker.errors.ContainerError as e:
        assert e.exit_status == 4, e
    else:
        raise AssertionError("exit 4 did not raise ContainerError")


def test_detached_lifecycle_logs_exec_and_wait():
    c = client.containers.run(
        "busybox", ["sh", "-c", "echo started; sleep 300"], detach=True, name=PREFIX + "life",
        labels={"sdk": "yes"},
    )
    try:
        c.reload()
        assert c.status == "running", c.status
        listed = client.containers.list(filters={"label": "sdk=yes"})
        assert [x.name for x in listed] == [PREFIX + "life"], listed
        for _ in range(50):
            if b"started" in c.logs():
                break
            import time
            time.sleep(0.1)
        assert b"started" in c.logs()
        code, out = c.exec_run(["sh", "-c", "echo in-exec; exit 2"])
        assert code == 2, (code, out)
        assert out == b"in-exec\n", out
        top = c.top()
        assert "Processes" in top and top["Processes"], top
        stats = c.stats(stream=False)
        assert "memory_stats" in stats, stats
        c.stop(timeout=1)
        res = c.wait()
        assert res["StatusCode"] in (137, 143), res
    finally:
        c.remove(force=True)
    try:
        client.containers.get(PREFIX + "life")
    except docker.errors.NotFound:
        pass
    else:
        raise AssertionError("removed container still found")


def test_errors_are_typed():
    try:
        client.containers.get("no-such-container-here")
    except docker.errors.NotFound:
        pass
    else:
        raise AssertionError("NotFound expected")
    try:
        client.containers.create("busybox", "true", mem_limit=1024)
    except docker.errors.APIError as e:
        assert e.status_code == 400, e
    else:
        raise AssertionError("a 1 KiB memory limit was accepted")


def test_networks():
    n = client.networks.create(PREFIX + "net")
    try:
        names = [x.name for x in client.networks.list()]
        assert PREFIX + "net" in names, names
        assert client.networks.get(n.id).name == PREFIX + "net"
    finally:
        n.remove()


def main():
    failed = 0
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            try:
                fn()
                print("ok", name)
            except Exception:
                failed += 1
                print("FAIL", name)
                traceback.print_exc()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
