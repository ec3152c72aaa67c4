"""The command line: the demo (real, deterministic, through a server too), create-world,
tokens, user errors."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.apps.cli import main
from travian_repo.apps.demo import DEMO_START, ProgressBar
from travian_repo.sandbox import Clock, create_world, player_tokens
from travian_repo.sql.tokens import player_for_token

REPO_ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def parse_table(text: str) -> list[list[str]]:
    """The rows of a table printed by ``travian_repo.apps.demo.format_table``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("player "))
    widths = [len(cell) for cell in lines[start + 1].split("  ")]
    rows = []
    for line in lines[start + 2:]:
        if not line.strip():
            break
        cells, at = [], 0
        for width in widths:
            cells.append(line[at:at + width].strip())
            at += width + 2
        rows.append(cells)
    return rows


def summary_table(output: str) -> dict[str, list[str]]:
    """The demo's final table, by player name."""
    return {row[0]: row for row in parse_table(output)}


@pytest.mark.slow  # two simulated days
def test_demo_is_real_and_deterministic(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/d.db"
    args = ("demo", "--players", "4", "--seed", "3", "--days", "1", "--database-url", url)
    code, first, err = run(capsys, *args)
    assert code == 0, err
    assert err == ""  # no progress bar when stderr is not a terminal
    code, second, err = run(capsys, *args)
    assert code == 0, err
    assert first == second

    table = summary_table(first)
    assert len(table) == 4
    assert [row[2] for row in table.values()] == ["economy", "raider", "trader", "diplomat"]
    clock = Clock(DEMO_START + timedelta(days=1))
    with tr.connect(url, clock=clock) as world:
        for player_id in range(1, 5):
            with world.unit_of_work(player_id) as uow:
                player = uow.players.get(player_id)
                (village,) = uow.villages.list_by_player(player_id)
                troops = uow.military.troops(village.id).total
                troops += sum(m.troops.total for m in uow.military.outgoing(village.id))
                troops += sum(m.troops.total for m in uow.military.incoming(village.id)
                              if m.kind == "return")
            row = table[player.name]
            assert row[1] == player.tribe
            assert row[3:6] == [str(player.population), "1", str(troops)]
        # the engine ran: builds completed, the clock is a day on
        assert world.players.get(1).population > 129
    assert "After 24 turns (2026-01-02 08:00 UTC" in first
    assert "\n1 day of game time" in first and "1 days" not in first
    assert str(tmp_path / "d.db") in first


@pytest.mark.slow  # two demo games
def test_demo_seed_changes_the_game(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/d.db"
    _, one, _ = run(capsys, "demo", "--players", "3", "--seed", "1", "--days", "0.5",
                    "--database-url", url)
    _, two, _ = run(capsys, "demo", "--players", "3", "--seed", "2", "--days", "0.5",
                    "--database-url", url)
    assert parse_table(one) != parse_table(two)


@pytest.mark.slow  # a demo game
def test_demo_defaults_to_a_file_in_the_current_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "demo", "--players", "2", "--days", "0.25")
    assert code == 0, err
    assert (tmp_path / "travian_demo.db").exists()
    assert str(tmp_path / "travian_demo.db") in out
    code, again, err = run(capsys, "demo", "--players", "2", "--days", "0.25")  # replaced
    assert code == 0 and again == out


@pytest.mark.slow  # two demo games and a server
def test_demo_through_a_server_with_a_manual_clock_plays_the_same_game(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """create-world + serve --manual-clock + demo --api-url: the local demo's table."""
    from travian_repo.sandbox.server import ServerThread, create_app

    served = f"sqlite:///{tmp_path}/served.db"
    code, _, err = run(capsys, "create-world", "--database-url", served, "--players", "3",
                       "--seed", "4", "--start", "developed")
    assert code == 0, err
    code, tokens, err = run(capsys, "tokens", "--database-url", served)
    assert code == 0, err
    (tmp_path / "tokens.txt").write_text(tokens)
    with ServerThread(create_app(served, manual_clock=True)) as server:
        code, remote, err = run(capsys, "demo", "--api-url", server.url, "--tokens",
                                str(tmp_path / "tokens.txt"), "--seed", "4", "--days", "0.5")
    assert code == 0, err
    assert f"the world served at {server.url}/v1/" in remote
    code, local, err = run(capsys, "demo", "--players", "3", "--seed", "4", "--days", "0.5",
                           "--database-url", f"sqlite:///{tmp_path}/local.db")
    assert code == 0, err
    assert parse_table(remote) == parse_table(local)


def test_demo_through_a_server_without_a_manual_clock_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from travian_repo.sandbox.server import ServerThread

    served = f"sqlite:///{tmp_path}/served.db"
    summary = create_world(served, players=2, start="developed")
    (tmp_path / "tokens.txt").write_text(
        "".join(f"{pid} {token}\n" for pid, token in summary.tokens.items()))
    with ServerThread(served) as server:
        code, _, err = run(capsys, "demo", "--api-url", server.url, "--tokens",
                           str(tmp_path / "tokens.txt"))
    assert code == 2 and "--manual-clock" in err and "Traceback" not in err


def test_progress_bar() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, width=10)
    bar(1, 4, DEMO_START)
    bar(4, 4, DEMO_START)
    assert stream.getvalue() == ("\r[##........] 1/4 turns  2026-01-01 08:00 UTC"
                                 "\r[##########] 4/4 turns  2026-01-01 08:00 UTC\n")


def test_create_world_then_tokens(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/w.db"
    code, out, err = run(capsys, "create-world", "--database-url", url, "--players", "5",
                         "--seed", "9", "--speed", "3", "--start", "developed")
    assert code == 0, err
    assert "5 players" in out
    with tr.connect(url) as world:
        assert world.database.settings.speed == 3
        assert world.database.settings.morale is True
        assert world.villages.get(1).population > 0

    code, out, err = run(capsys, "tokens", "--database-url", url)
    assert code == 0, err
    printed = dict(line.split(" ") for line in out.splitlines())
    assert sorted(printed) == ["1", "2", "3", "4", "5"]
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:  # the printed tokens act as their players
            assert {pid: player_for_token(conn, t) for pid, t in printed.items()} == {
                str(pid): pid for pid in range(1, 6)}
        reissued = player_tokens(url)  # fresh ones: those printed before stop working
        with engine.connect() as conn:
            assert all(player_for_token(conn, t) is None for t in printed.values())
            assert [player_for_token(conn, t) for t in reissued.values()] == [1, 2, 3, 4, 5]
    finally:
        engine.dispose()

    code, _, err = run(capsys, "create-world", "--database-url", url)
    assert code == 2 and "--replace" in err
    code, out, err = run(capsys, "create-world", "--database-url", url, "--players", "2",
                         "--no-morale", "--replace")
    assert code == 0, err
    assert len(player_tokens(url)) == 2
    with tr.connect(url) as world:
        assert world.database.settings.morale is False


@pytest.mark.parametrize(
    "argv",
    [
        ["tokens", "--database-url", "not a url"],
        ["create-world", "--database-url", "nosuchdriver://x/y"],
        ["create-world", "--database-url", "sqlite:///{tmp}/missing/dir/w.db"],
        ["tokens", "--database-url", "sqlite:///{tmp}/empty.db"],
        ["create-world", "--database-url", "sqlite:///{tmp}/w.db", "--players", "0"],
        ["create-world", "--database-url", "sqlite:///{tmp}/w.db", "--speed", "-1"],
        ["demo", "--players", "-3", "--database-url", "sqlite:///{tmp}/d.db"],
        ["demo", "--days", "-1", "--database-url", "sqlite:///{tmp}/d.db"],
        ["demo", "--api-url", "http://127.0.0.1:9"],
        ["demo", "--api-url", "http://127.0.0.1:9", "--tokens", "{tmp}/no-such-file"],
        ["demo", "--players", "many"],
        ["create-world"] if not os.environ.get("TRAVIAN_DATABASE_URL") else ["nope"],
        [],
    ],
)
def test_user_errors_exit_2_with_a_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str]
) -> None:
    code, out, err = run(capsys, *(a.replace("{tmp}", str(tmp_path)) for a in argv))
    assert code == 2
    assert err.strip() and "Traceback" not in err
    assert "travian-repo" in err


def test_tokens_on_a_database_that_is_not_a_world_says_what_to_do(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "empty.db").touch()
    code, _, err = run(capsys, "tokens", "--database-url", f"sqlite:///{tmp_path}/empty.db")
    assert code == 2
    assert "SchemaMismatch" in err and "create-world" in err


@pytest.mark.parametrize("command", ["tokens", "upgrade-world", "engine"])
def test_a_missing_sqlite_file_is_named_and_not_created(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    missing = tmp_path / "missing.db"
    code, _, err = run(capsys, command, "--database-url", f"sqlite:///{missing}")
    assert code == 2
    assert "ConfigurationError" in err and str(missing) in err
    assert not missing.exists()


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "demo" in out and "create-world" in out and "tokens" in out


@pytest.mark.slow  # a Python process of its own
def test_python_dash_m(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/w.db"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run(
        [sys.executable, "-m", "travian_repo", "create-world", "--database-url", url,
         "--players", "2"],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "travian_repo", "tokens", "--database-url", "::bad::"],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stderr.strip()


@pytest.mark.slow  # waits for the engine in real time
def test_serve_with_a_speed_runs_the_engine_by_itself(tmp_path: Path) -> None:
    """`travian-repo serve --speed N`: builds complete on their own, N times faster."""
    import socket
    import subprocess
    import sys
    import time

    url = f"sqlite:///{tmp_path}/speedy.db"
    summary = create_world(url, players=2, start="developed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "travian_repo", "serve", "--database-url", url,
         "--port", str(port), "--speed", "3600"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        world = None
        while world is None:
            try:
                world = tr.connect(api_url=f"http://127.0.0.1:{port}", token=summary.tokens[1])
            except tr.BackendUnavailable:
                assert time.monotonic() < deadline, "the server did not come up"
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                time.sleep(0.2)
        with world:
            order = world.villages.queue_building(1, "woodcutter")  # minutes of game time
            while world.villages.build_queue(1):
                assert time.monotonic() < deadline, "the build never completed"
                time.sleep(0.2)
            village = world.villages.get(1)
            assert village.buildings is not None
            assert {b.slot: b.level for b in village.buildings}[order.slot] == order.target_level
    finally:
        server.terminate()
        server.wait(10)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from travian_repo.apps.cli import main

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"travian-repo {tr.__version__}"


def _wait_for_build(url: str, server: Any, deadline: float) -> None:
    import time

    import sqlalchemy as sa

    raw = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        while True:
            with raw.connect() as conn:
                if not conn.execute(sa.text("SELECT count(*) FROM build_queue")).scalar():
                    return
            assert time.monotonic() < deadline, "the build never completed"
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            time.sleep(0.2)
    finally:
        raw.dispose()


@pytest.mark.slow  # Python processes of their own, waiting for the engine in real time
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("workers", [1, 3])
def test_engine_command_runs_the_world_and_stops_on_a_signal(
        postgres_url: str, workers: int, sig: str) -> None:
    """`travian-repo engine --workers N`: the engine without a server completes what falls
    due, and a signal stops every worker cleanly (exit 0, "Engine stopped.")."""
    import signal
    import subprocess
    import sys
    import time

    create_world(postgres_url, replace=True, players=2, start="developed")
    with tr.connect(postgres_url, player_id=1, prefer="sql", cache=False,
                    clock=Clock(datetime.now(timezone.utc) - timedelta(hours=2))) as world:
        world.villages.queue_building(1, "woodcutter")  # ordered 2 hours ago: due now
    proc = subprocess.Popen(
        [sys.executable, "-m", "travian_repo", "engine", "--database-url", postgres_url,
         "--workers", str(workers), "--interval", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        _wait_for_build(postgres_url, proc, time.monotonic() + 60)
        proc.send_signal(getattr(signal, sig))
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"Engine: {workers} worker(s)" in out and "Engine stopped." in out, (out, err)


def test_engine_command_refuses_workers_on_sqlite(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/one.db"
    create_world(url, players=2, start="developed")
    assert main(["engine", "--database-url", url, "--workers", "2"]) == 2
    assert "needs PostgreSQL" in capsys.readouterr().err


@pytest.mark.slow  # a server process, waiting for the engine in real time
def test_serve_with_engine_workers_stops_cleanly_on_sigterm(postgres_url: str) -> None:
    """`serve --speed N --engine-workers 2`: the engine threads complete builds, and SIGTERM
    stops the server and its engine (exit 0)."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    create_world(postgres_url, replace=True, players=2, start="developed")
    with tr.connect(postgres_url, player_id=1, prefer="sql", cache=False) as world:
        world.villages.queue_building(1, "woodcutter")  # minutes of game time
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "travian_repo", "serve", "--database-url", postgres_url,
         "--port", str(port), "--speed", "3600", "--engine-workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        _wait_for_build(postgres_url, server, time.monotonic() + 60)
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0, err


def test_serve_on_a_port_already_taken_is_one_error_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import socket

    url = f"sqlite:///{tmp_path / 'w.db'}"
    create_world(url, players=2, seed=1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        code, _, err = run(capsys, "serve", "--database-url", url, "--port", port, "--no-engine")
    assert code == 2
    assert err == f"travian-repo: error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
