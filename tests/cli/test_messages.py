"""Common mistakes and interruptions as a user meets them (issue 13 items 13 and 18): a
profile that does not exist and an endpoint without a scheme are configuration errors
(exit 2, one line saying what to write), a URL in the wrong form names the right one, the
10,000-parts error suggests the smallest part size that fits, and Ctrl-C is reported as
an interruption (exit 130), not as an error. No server is needed."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_settings import assert_one_line, cli

UNREACHABLE = "http://127.0.0.1:9"


@pytest.fixture
def small_file(tmp_path: Path) -> str:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    return str(path)


@pytest.mark.parametrize("argv", [
    ["cp", "{file}", "s3://bucket/key"],
    ["ls-uploads", "s3://bucket"],
    ["parts", "s3://bucket/key", "--upload-id", "U"],
    ["abort", "s3://bucket/key", "--upload-id", "U"],
])
@pytest.mark.parametrize("how", ["option", "AWS_PROFILE"])
def test_a_profile_that_does_not_exist_is_a_configuration_error(
        small_file: str, tmp_path: Path, argv: list[str], how: str) -> None:
    args = [a.format(file=small_file) for a in argv] + [
        "--endpoint-url", UNREACHABLE, "--journal", str(tmp_path / "j.sqlite3")][
        : None if argv[0] in ("cp", "abort") else 2]
    env = {"AWS_PROFILE": "nosuch"} if how == "AWS_PROFILE" else {}
    if how == "option":
        args += ["--profile", "nosuch"]
    result = cli(*args, env=env)
    assert_one_line(result, 2, "profile 'nosuch' not found", "--profile")
    assert "internal error" not in result.stderr


@pytest.mark.parametrize("argv", [
    ["cp", "{file}", "s3://bucket/key"],
    ["ls-uploads", "s3://bucket"],
    ["parts", "s3://bucket/key", "--upload-id", "U"],
])
@pytest.mark.parametrize("how", ["option", "BIGUPLOAD_ENDPOINT_URL", "AWS_ENDPOINT_URL"])
def test_an_endpoint_without_a_scheme_says_what_to_write(
        small_file: str, argv: list[str], how: str) -> None:
    args = [a.format(file=small_file) for a in argv]
    env = {} if how == "option" else {how: "127.0.0.1:9000"}
    if how == "option":
        args += ["--endpoint-url", "127.0.0.1:9000"]
    result = cli(*args, env=env)
    assert_one_line(result, 2, "'127.0.0.1:9000' has no scheme", "write http://127.0.0.1:9000")


def test_ls_uploads_names_the_form_it_takes() -> None:
    result = cli("ls-uploads", "bkt", "--endpoint-url", UNREACHABLE)
    assert_one_line(result, 2, "expected s3://bucket[/prefix]")
    assert "bucket/key" not in result.stderr


def test_a_batch_destination_names_the_form_it_takes(tmp_path: Path) -> None:
    result = cli("cp", str(tmp_path), "bkt/photos", "-r", "--endpoint-url", UNREACHABLE)
    assert_one_line(result, 2, "expected s3://bucket/prefix/")


def test_too_many_parts_suggests_the_smallest_part_size_that_fits(tmp_path: Path) -> None:
    # 60 GiB in 5 MiB parts is 12,288 parts; 60 GiB / 10,000 is 6.14 MiB, so 7 MiB is the
    # smallest whole-MiB size that fits (8,778 parts), and 6 MiB (10,240 parts) does not
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(60 << 30)
    result = cli("cp", str(big), "s3://bucket/key", "--part-size", "5MiB", "--dry-run")
    assert_one_line(result, 2, "12288 parts", "use --part-size 7MiB or more")
    assert cli("cp", str(big), "s3://bucket/key", "--part-size", "6MiB",
               "--dry-run").returncode == 2
    fits = cli("cp", str(big), "s3://bucket/key", "--part-size", "7MiB", "--dry-run", "--json")
    assert fits.returncode == 0, fits.stderr
    assert json.loads(fits.stdout)["parts"] == 8778


def _interrupt_while_waiting(argv: list[str]) -> tuple[int, str, str]:
    """Run the CLI against an endpoint that accepts the connection and never answers, send
    SIGINT once the request has arrived (so the signal lands in the event loop, as Ctrl-C
    would), and return (exit status, stdout, stderr)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(120)
        endpoint = "http://127.0.0.1:%d" % listener.getsockname()[1]
        proc = subprocess.Popen([sys.executable, "-m", "bigupload.cli", *argv, "--endpoint-url",
                                 endpoint], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        connection, _ = listener.accept()
        with connection:
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=60)
    return proc.returncode, stdout, stderr


@pytest.mark.parametrize("as_json", [False, True])
def test_ctrl_c_is_an_interruption_not_an_error(small_file: str, tmp_path: Path,
                                                as_json: bool) -> None:
    argv = ["cp", small_file, "s3://bucket/key", "--journal", str(tmp_path / "j.sqlite3")]
    code, stdout, stderr = _interrupt_while_waiting(argv + (["--json"] if as_json else []))
    assert code == 130, stderr
    assert stderr.strip().splitlines() == [
        "bigupload: interrupted; the journal is saved: run the same command again to resume "
        "(or add --restart to start over)"], stderr
    if as_json:
        event = json.loads(stdout.strip().splitlines()[-1])
        assert event["event"] == "interrupted" and event["exit_code"] == 130
