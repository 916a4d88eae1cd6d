"""Configuration: the declared settings, validation, includes, and the CLI's -t."""

import os
import subprocess
import sys

import pytest

from test_unit_predixyconf import SENTINEL as PREDIXY_SENTINEL  # predixy's example, filled in

from geproxy.config import ConfigError, load
from geproxy.settings import SETTINGS, configspec_lines

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GOOD = """\
Name = geproxy
Bind = 127.0.0.1:7617
WorkerProcesses = 1
ClientTimeout = 0
[ClusterServerPool]
MasterReadPriority = 100
RefreshInterval = 1
ServerTimeout = 1
ServerFailureLimit = 10
ServerRetryTimeout = 1
Servers = 127.0.0.1:7000, 127.0.0.1:7001
"""


def write(tmp_path, text, name="proxy.conf"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_issue_example_loads(tmp_path):
    cfg = load(write(tmp_path, GOOD))
    assert cfg.Name == "geproxy" and cfg.Bind == "127.0.0.1:7617"
    assert cfg.WorkerProcesses == 1 and cfg.ClientTimeout == 0
    assert cfg.pool.Servers == ["127.0.0.1:7000", "127.0.0.1:7001"]
    assert cfg.pool.ServerTimeout == 1.0 and cfg.pool.ServerFailureLimit == 10
    assert cfg.MaxMemory == 0 and cfg.BufSize == 16384  # defaults


def test_durations_and_sizes(tmp_path):
    text = GOOD.replace("ServerTimeout = 1", "ServerTimeout = 500ms").replace(
        "ClientTimeout = 0", "ClientTimeout = 0\nMaxMemory = 1G\nLogRotate = 1d 2G")
    cfg = load(write(tmp_path, text))
    assert cfg.pool.ServerTimeout == 0.5
    assert cfg.MaxMemory == 1 << 30
    assert cfg.LogRotate == (86400, 2 << 30)


def test_worker_threads_alias(tmp_path):
    cfg = load(write(tmp_path, GOOD.replace("WorkerProcesses = 1", "WorkerThreads = 3")))
    assert cfg.WorkerProcesses == 3


def test_include_relative_to_including_file(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path, "[ClusterServerPool]\nServers = 10.0.0.1:7000\nPassword = pw\n", "sub/cluster.conf")
    main = write(tmp_path, "Name = x\nInclude = sub/cluster.conf\nLog = logs/g.log\n")
    cfg = load(main)
    assert cfg.pool.Servers == ["10.0.0.1:7000"] and cfg.pool.Password == "pw"
    assert cfg.Log == str(tmp_path / "logs" / "g.log")


@pytest.mark.parametrize("change,needle", [
    (("ServerTimeout = 1", "ServerTimeout = soon"), "ClusterServerPool.ServerTimeout"),
    (("MasterReadPriority = 100", "MasterReadPriority = 101"), "ClusterServerPool.MasterReadPriority"),
    (("Name = geproxy", "Name = geproxy\nColour = blue"), "unknown setting Colour"),
    (("RefreshInterval = 1", "RefreshInterval = 1\nRefreshIntervall = 2"),
     "unknown setting ClusterServerPool.RefreshIntervall"),
    (("Servers = 127.0.0.1:7000, 127.0.0.1:7001", "Servers = nohost"), "ClusterServerPool.Servers"),
    (("Servers = 127.0.0.1:7000, 127.0.0.1:7001", ""), "ClusterServerPool.Servers is required"),
    (("Bind = 127.0.0.1:7617", "Bind = 127.0.0.1:99999"), "Bind"),
    (("ClientTimeout = 0", "ClientTimeout = -1"), "ClientTimeout"),
    (("ClientTimeout = 0", "MaxMemory = lots"), "MaxMemory"),
])
def test_bad_values_name_the_key(tmp_path, change, needle):
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, GOOD.replace(*change)))
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_file_and_missing_pool(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load(str(tmp_path / "nope.conf"))
    with pytest.raises(ConfigError, match="ClusterServerPool"):
        load(write(tmp_path, "Name = x\n"))


def test_every_setting_is_declared_once_with_doc():
    names = [s.key for s in SETTINGS]
    assert len(names) == len(set(names))
    assert all(s.doc for s in SETTINGS)
    from geproxy.settings import GROUP, GROUPS, POOL, POOLS
    for kind in POOLS:  # each kind of pool's configspec has every setting that applies to it, once
        applies = [s for s in SETTINGS if s.section not in (POOL, GROUP) or
                   (s.section == POOL and kind in s.pools) or (s.section == GROUP and kind in GROUPS)]
        lines = [line.split(" = ")[0] for line in configspec_lines(kind) if not line.startswith("[")]
        assert sorted(lines) == sorted(s.name for s in applies), kind


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "geproxy"] + list(args), cwd=ROOT,
                          capture_output=True, text=True, timeout=30)


def test_cli_check_good_and_bad(tmp_path):
    ok = run_cli("-t", "-c", write(tmp_path, GOOD))
    assert ok.returncode == 0, ok.stderr
    bad = run_cli("-t", "-c", write(tmp_path, GOOD.replace("ServerFailureLimit = 10", "ServerFailureLimit = x"),
                                     "bad.conf"))
    assert bad.returncode != 0
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "ServerFailureLimit" in lines[0]
    assert "Traceback" not in bad.stderr


def test_cli_version_and_example_config():
    v = run_cli("--version")
    assert v.returncode == 0 and "geproxy" in v.stdout
    for name in ("proxy.conf", "sentinel.conf", "standalone.conf"):
        example = run_cli("-t", "-c", os.path.join(ROOT, "etc", name))
        assert example.returncode == 0, example.stderr




@pytest.mark.parametrize("text,message", [
    (PREDIXY_SENTINEL, None),
    (PREDIXY_SENTINEL.replace("Hash crc16", "Hash md5"), "Hash"),
    (PREDIXY_SENTINEL.replace('HashTag "{}"', 'HashTag "{"'), "HashTag"),
    (PREDIXY_SENTINEL.replace("Sentinels sekret {", "Sentinels {\n        + nonsense"), "Sentinels"),
    (PREDIXY_SENTINEL.replace("    Group shard001 {\n    }\n    Group shard002 {\n    }\n", ""), "no group"),
    (PREDIXY_SENTINEL.replace("Group shard001 {", "Group shard001 {\n        + 10.0.0.1:6379"),
     "shard001.Servers"),
    ("StandaloneServerPool {\n    RefreshMethod fixed\n    Group a {\n    }\n}\n", "a.Servers"),
    ("StandaloneServerPool {\n    RefreshMethod sentinel\n    Group a {\n    }\n}\n", "Sentinels"),
])
def test_predixy_group_pool_files(tmp_path, text, message):
    """predixy's Sentinel/Standalone files pass -t unchanged; a wrong one gets one line naming the key."""
    r = run_cli("-t", "-c", write(tmp_path, "Bind 127.0.0.1:7617\n" + text))
    if message is None:
        assert r.returncode == 0, r.stderr
    else:
        lines = r.stderr.strip().splitlines()
        assert r.returncode != 0 and len(lines) == 1 and message in lines[0], r.stderr
        assert "Traceback" not in r.stderr


def test_cli_overrides(tmp_path):
    bad = run_cli("-t", "-c", write(tmp_path, GOOD), "--bind", "nonsense")
    assert bad.returncode != 0 and "Bind" in bad.stderr


def test_readme_reference_is_current():
    from geproxy.settings import reference_markdown
    with open(os.path.join(ROOT, "README.md")) as f:
        assert reference_markdown() in f.read(), "run: python -m geproxy.settings, paste into README"


PREDIXY_POOL = "Bind 127.0.0.1:7617\nClusterServerPool {\n%s\n    Servers {\n        + 127.0.0.1:7000\n    }\n}\n"


@pytest.mark.parametrize("text, needle", [
    (GOOD + "Password = s3cr3t-a, s3cr3t-b\n", "ClusterServerPool.Password"),
    (GOOD + "User = app\nPassword = s3cr3t-a,s3cr3t-b\n", "ClusterServerPool.Password"),
    (GOOD + "Password s3cr3t-a\n", "line 12"),
    (GOOD + "[Authority]\n[[app]]\nPassword = s3cr3t-a, s3cr3t-b\nMode = write\n", "Authority.app.Password"),
    (GOOD.replace("[ClusterServerPool]", "[SentinelServerPool]").replace("Servers =", "Sentinels =")
     + "SentinelPassword = s3cr3t-a, s3cr3t-b\n[[g]]\n", "SentinelServerPool.SentinelPassword"),
    (PREDIXY_POOL % '    Password "s3cr3t-a"s3cr3t-b', ":3:"),
])
def test_config_errors_never_show_a_password(tmp_path, text, needle):
    """A comma makes a list of a password: the error must say so without the value,
    in load(), with -t and when starting."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load(path)
    assert needle in str(e.value) and "s3cr3t" not in str(e.value), str(e.value)
    for args in (["-t", "-c", path], ["-c", path]):
        run = run_cli(*args)
        assert run.returncode != 0 and needle in run.stderr + run.stdout
        assert "s3cr3t" not in run.stderr + run.stdout, run.stderr
