"""Settings as a user gives them: ``BIGUPLOAD_*`` variables (switches that mean what they
say, malformed values refused with one line naming the variable, even with ``--help``),
negative sizes on the command line, and each command's ``--help`` showing only its own
options, grouped, one line each. No server is needed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bigupload.cli import build_parser, make_config
from bigupload.journal import Journal


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bigupload.cli", *args], capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "80", **(env or {})})


def assert_one_line(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bigupload: error:"), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def small_file(tmp_path: Path) -> str:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    return str(path)


@pytest.mark.parametrize("spelling,expected", [
    ("1", True), ("true", True), ("TRUE", True), ("Yes", True), ("on", True), ("ON", True),
    ("0", False), ("false", False), ("False", False), ("no", False), ("NO", False), ("off", False),
])
@pytest.mark.parametrize("variable,dest", [
    ("BIGUPLOAD_NO_VERIFY_SSL", "no_verify_ssl"), ("BIGUPLOAD_JSON", "json"),
    ("BIGUPLOAD_DEBUG", "debug"), ("BIGUPLOAD_FAIL_FAST", "fail_fast"),
    ("BIGUPLOAD_FOLLOW_SYMLINKS", "follow_symlinks"), ("BIGUPLOAD_SKIP_EXISTING", "skip_existing"),
    ("BIGUPLOAD_NO_OVERWRITE", "no_overwrite"), ("BIGUPLOAD_REQUEST_PAYER", "request_payer"),
])
def test_switches_in_the_environment_mean_what_they_say(
        monkeypatch: pytest.MonkeyPatch, variable: str, dest: str, spelling: str,
        expected: bool) -> None:
    monkeypatch.setenv(variable, spelling)
    args = build_parser().parse_args(["cp", "a", "s3://bucket/key"])
    assert getattr(args, dest) is expected


def test_no_verify_ssl_false_keeps_verification_on(monkeypatch: pytest.MonkeyPatch,
                                                   small_file: str) -> None:
    monkeypatch.setenv("BIGUPLOAD_NO_VERIFY_SSL", "false")
    args = build_parser().parse_args(["cp", small_file, "s3://bucket/key"])
    assert make_config(args).verify_tls is True
    result = cli("cp", small_file, "s3://bucket/key", "--dry-run",
                 env={"BIGUPLOAD_NO_VERIFY_SSL": "false"})
    assert result.returncode == 0, result.stderr
    assert "verification is OFF" not in result.stderr
    result = cli("cp", small_file, "s3://bucket/key", "--dry-run",
                 env={"BIGUPLOAD_NO_VERIFY_SSL": "1"})
    assert "verification is OFF" in result.stderr


def test_json_0_is_not_json(small_file: str) -> None:
    result = cli("cp", small_file, "s3://bucket/key", "--dry-run", env={"BIGUPLOAD_JSON": "0"})
    assert result.returncode == 0, result.stderr
    assert not result.stdout.startswith("{")


@pytest.mark.parametrize("variable,value,fragment", [
    ("BIGUPLOAD_NO_VERIFY_SSL", "maybe", "1/true/yes/on or 0/false/no/off"),
    ("BIGUPLOAD_JSON", "2", "1/true/yes/on"),
    ("BIGUPLOAD_CONCURRENCY", "abc", "whole number"),
    ("BIGUPLOAD_MAX_ATTEMPTS", "x", "whole number"),
    ("BIGUPLOAD_PROGRESS", "bogus", "auto, always, never"),
    ("BIGUPLOAD_CHECKSUM_TYPE", "both", "full-object, composite"),
    ("BIGUPLOAD_SSE", "aes", "AES256, aws:kms"),
    ("BIGUPLOAD_CHECKSUM", "md5", "unknown checksum"),
    ("BIGUPLOAD_PART_SIZE", "12XB", "malformed size"),
    ("BIGUPLOAD_MEMORY_LIMIT", "-1GiB", "negative"),
])
@pytest.mark.parametrize("argv", [["cp", "{file}", "s3://bucket/key", "--dry-run"],
                                  ["cp", "--help"], ["--help"], ["status", "--help"]])
def test_malformed_environment_is_one_line_and_exit_2(
        small_file: str, variable: str, value: str, fragment: str, argv: list[str]) -> None:
    result = cli(*[a.format(file=small_file) for a in argv], env={variable: value})
    assert_one_line(result, 2, f"{variable}={value!r}", fragment)
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_empty_variables_are_unset(small_file: str) -> None:
    result = cli("cp", small_file, "s3://bucket/key", "--dry-run",
                 env={"BIGUPLOAD_CONCURRENCY": "", "BIGUPLOAD_JSON": " "})
    assert result.returncode == 0, result.stderr
    assert "concurrency 8" in result.stdout


def test_the_command_line_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BIGUPLOAD_CONCURRENCY", "3")
    monkeypatch.setenv("BIGUPLOAD_PART_SIZE", "8MiB")
    args = build_parser().parse_args(["cp", "a", "s3://b/k", "--concurrency", "5"])
    assert (args.concurrency, args.part_size) == (5, "8MiB")


@pytest.mark.parametrize("option,value", [
    ("--part-size", "-5MiB"), ("--multipart-threshold", "-1"), ("--memory-limit", "-64MiB"),
    ("--part-size", "-.5GiB"),
])
def test_negative_sizes_are_refused_clearly(small_file: str, option: str, value: str) -> None:
    result = cli("cp", small_file, "s3://bucket/key", option, value, "--dry-run")
    assert_one_line(result, 2, option, "must not be negative")


def test_argparse_errors_are_one_line(small_file: str) -> None:
    result = cli("cp", small_file, "s3://bucket/key", "--progress", "sometimes")
    assert_one_line(result, 2, "--progress", "invalid choice", "bigupload cp --help")
    result = cli("status", "--concurrency", "3")
    assert_one_line(result, 2, "unrecognized arguments: --concurrency")


def _option_groups(help_text: str) -> dict[str, list[str]]:
    """Section title -> the options listed in it."""
    groups: dict[str, list[str]] = {}
    current = None
    for line in help_text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            current = line[:-1]
            groups[current] = []
        elif current is not None and (m := re.match(r"^  (-.*?)(?:\s{2,}|$)", line)):
            groups[current] += re.findall(r"(?<!\S)--?[\w-]+", m.group(1))
    return groups


COMMANDS_OPTIONS = {
    "cp": {"--part-size", "--checksum", "--recursive", "--manifest", "--content-type",
           "--restart", "--dry-run", "--concurrency", "--endpoint-url", "--journal", "--json",
           "--sse-c-key-file", "--fail-fast"},
    "resume": {"--concurrency", "--endpoint-url", "--journal", "--json", "--sse-c-key-file",
               "--fail-fast", "--request-payer", "--expected-bucket-owner"},
    "status": {"--all", "--journal", "--json", "--debug"},
    "forget": {"--finished", "--failed", "--older-than", "--journal", "--json"},
    "ls-uploads": {"--endpoint-url", "--profile", "--json", "--request-payer",
                   "--expected-bucket-owner", "--max-attempts"},
    "parts": {"--upload-id", "--endpoint-url", "--json", "--max-parts", "--part-number-marker",
              "--request-payer", "--expected-bucket-owner", "--sse-c-key-file",
              "--max-attempts"},
    "abort": {"--upload-id", "--endpoint-url", "--journal", "--json", "--request-payer",
              "--expected-bucket-owner", "--max-attempts"},
}
NOT_THEIRS = {
    "resume": {"--part-size", "--checksum", "--content-type", "--restart", "--dry-run",
               "--recursive"},
    "status": {"--endpoint-url", "--region", "--profile", "--no-verify-ssl", "--concurrency",
               "--progress"},
    "forget": {"--endpoint-url", "--concurrency"},
    # S3's ListMultipartUploads and AbortMultipartUpload take no SSE-C key
    "ls-uploads": {"--journal", "--concurrency", "--sse-c-key-file"},
    "parts": {"--journal", "--concurrency"},
    "abort": {"--concurrency", "--sse-c-key-file"},
}


@pytest.mark.parametrize("command", sorted(COMMANDS_OPTIONS))
def test_help_shows_only_the_commands_options_grouped_one_line_each(command: str) -> None:
    result = cli(command, "--help")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    groups = _option_groups(text.split("exit codes:")[0])
    listed = {opt for options in groups.values() for opt in options}
    assert COMMANDS_OPTIONS[command] <= listed, COMMANDS_OPTIONS[command] - listed
    assert not NOT_THEIRS.get(command, set()) & listed
    # grouped: beyond -h, nothing sits in argparse's catch-all "options" section unless
    # the command has a handful of its own
    assert len(groups.get("options", [])) <= 3, groups.get("options")
    # one line each: every option line carries its help, and none continues on the next
    body = text.split("exit codes:")[0]
    for line in body.splitlines():
        if re.match(r"^  -", line):
            assert re.search(r"\S\s{2,}\S", line.strip()), f"no help on the line: {line!r}"
        assert not re.match(r"^ {10,}\S", line), f"a help that wraps: {line!r}"
    assert all(len(line) <= 80 for line in text.splitlines())
    assert re.search(r"^usage: bigupload " + command + r" \[options\]", text, re.M)


def test_bigupload_dry_run_in_the_environment_is_never_silently_ignored(
        small_file: str, tmp_path: Path) -> None:
    """--dry-run is given on the command line only (README): BIGUPLOAD_DRY_RUN=1 on a cp
    that would send used to be ignored, and the file sent. Now it is refused before
    anything (exit 2, one line, no journal made); with --dry-run it changes nothing."""
    journal = tmp_path / "j.db"
    result = cli("cp", small_file, "s3://bucket/key", "--endpoint-url", "http://127.0.0.1:9",
                 "--journal", str(journal), env={"BIGUPLOAD_DRY_RUN": "1"})
    assert_one_line(result, 2, "BIGUPLOAD_DRY_RUN is not read", "give --dry-run")
    assert not journal.exists()
    planned = cli("cp", small_file, "s3://bucket/key", "--endpoint-url", "http://127.0.0.1:9",
                  "--dry-run", env={"BIGUPLOAD_DRY_RUN": "1"})
    assert planned.returncode == 0 and planned.stderr == "", planned.stderr


@pytest.mark.parametrize("variable,said", [
    ("BIGUPLOAD_PARTSIZE", "BIGUPLOAD_PARTSIZE is not a bigupload setting and is ignored "
                           "(did you mean BIGUPLOAD_PART_SIZE?)"),
    ("BIGUPLOAD_CONCURENCY", "BIGUPLOAD_CONCURENCY is not a bigupload setting and is ignored "
                             "(did you mean BIGUPLOAD_CONCURRENCY?)"),
    ("BIGUPLOAD_NOTHING_LIKE_IT", "BIGUPLOAD_NOTHING_LIKE_IT is not a bigupload setting and "
                                  "is ignored (see: bigupload --help)"),
    ("BIGUPLOAD_RESTART", "BIGUPLOAD_RESTART is ignored: --restart is given on the command "
                          "line only"),
])
def test_an_unknown_bigupload_variable_is_one_warning_naming_the_closest(
        variable: str, said: str, tmp_path: Path) -> None:
    """A misspelled variable used to be ignored without a word. It is a warning, not an
    error: the run goes on as before (status here), with one line on stderr."""
    with Journal(tmp_path / "j.db"):
        pass
    result = cli("status", "--journal", str(tmp_path / "j.db"), env={variable: "7"})
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [f"bigupload: {said}"], result.stderr


def test_known_variables_raise_no_warning(tmp_path: Path) -> None:
    env = {"BIGUPLOAD_PART_SIZE": "64MiB", "BIGUPLOAD_TLS_SEND": "1", "BIGUPLOAD_LEAN_PUT": "1",
           "BIGUPLOAD_CHECKSUM_BACKEND": "", "BIGUPLOAD_JOURNAL": str(tmp_path / "j.db"),
           "BIGUPLOAD_EVENT_LOOP": "asyncio", "BIGUPLOAD_DRY_RUN": ""}
    with Journal(tmp_path / "j.db"):
        pass
    result = cli("status", env=env)
    assert result.returncode == 0 and result.stderr == "", result.stderr
