"""The command line: the demo (real and deterministic), create-world, tokens, user errors."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

import travian_repo as tr
from travian_repo.cli import DEMO_START, DEMO_TURN_SECONDS, main
from travian_repo.sandbox import Clock, player_tokens

REPO_ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def summary_table(output: str) -> dict[str, list[str]]:
    """The demo's final table, by player name."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("player "))
    rows: dict[str, list[str]] = {}
    for line in lines[start + 2:]:
        if not line.strip() or line.startswith("pop = "):
            break
        cells = line.split()
        rows[cells[0]] = cells
    return rows


def test_demo_is_real_and_deterministic(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/d.db"
    args = ("demo", "--players", "4", "--seed", "3", "--database-url", url)
    code, first, err = run(capsys, *args)
    assert code == 0, err
    code, second, err = run(capsys, *args)
    assert code == 0, err
    assert first == second

    turns = 3
    clock = Clock(DEMO_START + timedelta(seconds=DEMO_TURN_SECONDS * (turns - 1)))
    table = summary_table(first)
    assert len(table) == 4
    with tr.connect(url, clock=clock) as world:
        for player_id in range(1, 5):
            with world.unit_of_work(player_id) as uow:
                player = uow.players.get(player_id)
                (village,) = uow.villages.list_by_player(player_id)
                troops = uow.military.troops(village.id)
                outgoing = uow.military.outgoing(village.id)
            assert village.resources is not None and village.build_queue is not None
            row = table[player.name]
            assert row[1] == player.tribe
            assert row[2:10] == [
                str(player.population),
                *(str(amount) for amount in village.resources),
                str(len(village.build_queue)),
                str(troops.total),
                str(len(outgoing)),
            ]
            accepted, refused = int(row[10]), int(row[11])
            assert accepted + refused == 2 * turns
    assert "Nothing completes yet" in first
    assert str(tmp_path / "d.db") in first


def test_demo_seed_changes_the_game(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/d.db"
    _, one, _ = run(capsys, "demo", "--players", "3", "--seed", "1", "--database-url", url)
    _, two, _ = run(capsys, "demo", "--players", "3", "--seed", "2", "--database-url", url)
    assert one != two


def test_demo_defaults_to_a_file_in_the_current_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "demo", "--players", "2", "--turns", "1")
    assert code == 0, err
    assert (tmp_path / "travian_demo.db").exists()
    assert str(tmp_path / "travian_demo.db") in out
    code, again, err = run(capsys, "demo", "--players", "2", "--turns", "1")  # replaced
    assert code == 0 and again == out


def test_create_world_then_tokens(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/w.db"
    code, out, err = run(capsys, "create-world", "--database-url", url, "--players", "5",
                         "--seed", "9", "--speed", "3", "--start", "developed")
    assert code == 0, err
    assert "5 players" in out
    with tr.connect(url) as world:
        assert world.database.settings.speed == 3
        assert world.villages.get(1).population > 0

    code, out, err = run(capsys, "tokens", "--database-url", url)
    assert code == 0, err
    lines = out.splitlines()
    assert lines == [f"{pid} {token}" for pid, token in player_tokens(url).items()]
    assert len(lines) == 5

    code, _, err = run(capsys, "create-world", "--database-url", url)
    assert code == 2 and "--replace" in err
    code, out, err = run(capsys, "create-world", "--database-url", url, "--players", "2",
                         "--replace")
    assert code == 0, err
    assert len(player_tokens(url)) == 2


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
        ["demo", "--turns", "-1", "--database-url", "sqlite:///{tmp}/d.db"],
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
    code, _, err = run(capsys, "tokens", "--database-url", f"sqlite:///{tmp_path}/empty.db")
    assert code == 2
    assert "SchemaMismatch" in err and "create-world" in err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "demo" in out and "create-world" in out and "tokens" in out


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
