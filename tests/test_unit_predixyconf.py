"""predixy's brace-format configuration files (geproxy.predixyconf).

SEED_PREDIXY and SEED_CLUSTER are the predixy.conf and cluster.conf printed in
the seed how-to (/work/shared/seed/predixy-cluster-proxy-howto.md), verbatim,
comments included: those are the files users will point geproxy at.
"""

import os

import pytest

from geproxy.predixyconf import PredixyConfError, load_predixy, looks_like_predixy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED_DOC = "/work/shared/seed/predixy-cluster-proxy-howto.md"

SEED_PREDIXY = """\
# predixy.conf

################################### GENERAL ####################################
## Predixy configuration file example

## Specify a name for this predixy service
## redis command INFO can get this
Name PredixyExample

## Specify listen address, support IPV4, IPV6, Unix socket
## Examples:
# Bind 127.0.0.1:7617
# Bind 0.0.0.0:7617
# Bind /tmp/predixy

# 변경!
## Default is 0.0.0.0:7617
Bind 0.0.0.0:7617

## Worker threads
WorkerThreads 4

## Memory limit, 0 means unlimited

## Examples:
# MaxMemory 100M
# MaxMemory 1G
# MaxMemory 0

## MaxMemory can change online by CONFIG SET MaxMemory xxx
## Default is 0
MaxMemory 0

## Close the connection after a client is idle for N seconds (0 to disable)
## ClientTimeout can change online by CONFIG SET ClientTimeout N
## Default is 0
ClientTimeout 300

## IO buffer size
## Default is 4096
# BufSize 4096

################################### LOG ########################################
## Log file path
## Unspecify will log to stdout
## Default is Unspecified
Log ./predixy.log

## LogRotate support

## 1d rotate log every day
## nh rotate log every n hours   1 <= n <= 24
## nm rotate log every n minutes 1 <= n <= 1440
## nG rotate log evenry nG bytes
## nM rotate log evenry nM bytes
## time rotate and size rotate can combine eg 1h 2G, means 1h or 2G roate a time

## Examples:
# LogRotate 1d 2G
# LogRotate 1d

## Default is disable LogRotate

## In multi-threads, worker thread log need lock,
## AllowMissLog can reduce lock time for improve performance
## AllowMissLog can change online by CONFIG SET AllowMissLog true|false
## Default is true
# AllowMissLog false

## LogLevelSample, output a log every N
## all level sample can change online by CONFIG SET LogXXXSample N
LogVerbSample 0
LogDebugSample 0
LogInfoSample 10000
LogNoticeSample 1
LogWarnSample 1
LogErrorSample 1

################################### AUTHORITY ##################################
Include auth.conf

# 변경!
################################### SERVERS ####################################
Include cluster.conf
# Include sentinel.conf
# Include try.conf

################################### DATACENTER #################################
## LocalDC specify current machine dc
# LocalDC bj

## see dc.conf
# Include dc.conf

################################### COMMAND ####################################
## Custom command define, see command.conf
#Include command.conf

################################### LATENCY ####################################
## Latency monitor define, see latency.conf
Include latency.conf
"""

SEED_CLUSTER = """\
# cluster.conf

## redis cluster server pool define

##ClusterServerPool {
##    [Password xxx]                        #default no
##    [MasterReadPriority [0-100]]          #default 50
##    [StaticSlaveReadPriority [0-100]]     #default 0
##    [DynamicSlaveReadPriority [0-100]]    #default 0
##    [RefreshInterval number[s|ms|us]]     #default 1, means 1 second
##    [ServerTimeout number[s|ms|us]]       #default 0, server connection socket read/write timeout
##    [ServerFailureLimit number]           #default 10
##    [ServerRetryTimeout number[s|ms|us]]  #default 1
##    [KeepAlive seconds]                   #default 0, server connection tcp keepalive

##    Servers {
##        + addr
##        ...
##    }
##}

# 변경!
## Examples:
ClusterServerPool {
    MasterReadPriority 60
    StaticSlaveReadPriority 50
    DynamicSlaveReadPriority 50
    RefreshInterval 1
    ServerTimeout 1
    ServerFailureLimit 10
    ServerRetryTimeout 1
    Servers {
        + 127.0.0.1:6300
        + 127.0.0.1:6301
        + 127.0.0.1:6302
        + 127.0.0.1:6400
        + 127.0.0.1:6401
        + 127.0.0.1:6402
    }
}
"""

AUTH_CONF = """\
## Authority control (predixy's conf/auth.conf, trimmed)
## Authority {
##     Auth [password] {
##         Mode read|write|admin
##         [KeyPrefix Prefix1 Prefix2...]
##     }...
## }
Authority {
    Auth {
        Mode read
    }
####  password is empty, this Auth is default auth
    Auth "#a complex password#" {
        Mode admin
    }
    Auth def {
        Mode write
        ReadKeyPrefix User Stats
        WriteKeyPrefix User
    }
}
"""

LATENCY_CONF = """\
## LatencyMonitor record command time eplapsed (predixy's conf/latency.conf, trimmed)
LatencyMonitor all {
    Commands {
        + all
        - blpop
        - brpop
        - brpoplpush
    }
    TimeSpan {
        + 100
        + 200
        + 500
        + 1000
    }
}

LatencyMonitor get {
    Commands {
        + get
    }
    TimeSpan {
        + 100
        + 1000
    }
}
"""

SEED_SERVERS = ["127.0.0.1:6300", "127.0.0.1:6301", "127.0.0.1:6302",
                "127.0.0.1:6400", "127.0.0.1:6401", "127.0.0.1:6402"]

SEED_DICT = {
    "Name": "PredixyExample",
    "Bind": "0.0.0.0:7617",
    "WorkerThreads": "4",
    "MaxMemory": "0",
    "ClientTimeout": "300",
    "Log": "./predixy.log",
    "LogVerbSample": "0",
    "LogDebugSample": "0",
    "LogInfoSample": "10000",
    "LogNoticeSample": "1",
    "LogWarnSample": "1",
    "LogErrorSample": "1",
    "Authority": {
        "default": {"Mode": "read"},
        "auth1": {"Password": "#a complex password#", "Mode": "admin"},
        "auth2": {"Password": "def", "Mode": "write", "ReadKeyPrefix": ["User", "Stats"],
                  "WriteKeyPrefix": ["User"]},
    },
    "ClusterServerPool": {
        "MasterReadPriority": "60",
        "StaticSlaveReadPriority": "50",
        "DynamicSlaveReadPriority": "50",
        "RefreshInterval": "1",
        "ServerTimeout": "1",
        "ServerFailureLimit": "10",
        "ServerRetryTimeout": "1",
        "Servers": SEED_SERVERS,
    },
    "LatencyMonitor": {
        "all": {"Commands": ["all", "-blpop", "-brpop", "-brpoplpush"], "TimeSpan": ["100", "200", "500", "1000"]},
        "get": {"Commands": ["get"], "TimeSpan": ["100", "1000"]},
    },
}

POOL = """\
ClusterServerPool {
    Servers {
        + 127.0.0.1:7000
    }
}
"""


def write(folder, name, text):
    p = folder / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return str(p)


def load_text(tmp_path, text, name="predixy.conf"):
    return load_predixy(write(tmp_path, name, text))


def error_of(tmp_path, text, name="predixy.conf"):
    with pytest.raises(PredixyConfError) as info:
        load_text(tmp_path, text, name)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def seed_files(tmp_path):
    write(tmp_path, "auth.conf", AUTH_CONF)
    write(tmp_path, "cluster.conf", SEED_CLUSTER)
    write(tmp_path, "latency.conf", LATENCY_CONF)
    return write(tmp_path, "predixy.conf", SEED_PREDIXY)


# ---- the seed's files ----

@pytest.mark.skipif(not os.path.exists(SEED_DOC), reason="seed how-to not present")
def test_seed_texts_are_verbatim():
    doc = open(SEED_DOC, encoding="utf-8").read()
    assert "```\n" + SEED_PREDIXY + "```" in doc
    assert "```\n" + SEED_CLUSTER + "```" in doc


def test_seed_predixy_conf_with_its_includes(tmp_path):
    assert load_predixy(seed_files(tmp_path)) == SEED_DICT


def test_seed_cluster_conf_alone(tmp_path):
    assert load_text(tmp_path, SEED_CLUSTER, "cluster.conf") == {"ClusterServerPool": SEED_DICT["ClusterServerPool"]}


def test_seed_dict_fits_our_configspec(tmp_path):
    """The shapes produced are what the configobj loader validates (aliases applied as load() does)."""
    configobj = pytest.importorskip("configobj")
    from validate import Validator

    from geproxy.settings import ALIASES, FUNCTIONS, configspec_lines

    raw = load_predixy(seed_files(tmp_path))
    for alias, name in ALIASES.items():
        if alias in raw:
            raw[name] = raw.pop(alias)
    cfg = configobj.ConfigObj(raw, configspec=configspec_lines(), list_values=True)
    assert cfg.validate(Validator(FUNCTIONS), preserve_errors=True) is True
    assert configobj.get_extra_values(cfg) == []
    assert cfg["WorkerProcesses"] == 4 and cfg["ClusterServerPool"]["Servers"] == SEED_SERVERS
    assert cfg["Authority"]["auth2"]["ReadKeyPrefix"] == ["User", "Stats"]


# ---- telling the two formats apart ----

def test_looks_like_predixy_on_predixy_files():
    for text in (SEED_PREDIXY, SEED_CLUSTER, AUTH_CONF, LATENCY_CONF, POOL,
                 "Name PredixyExample\n", "# c\n\nInclude x.conf\n", "ClusterServerPool {\n}\n",
                 "Authority {\n", 'Auth "pw" {\n', "  Bind 127.0.0.1:7617  # listen\n", "}\n"):
        assert looks_like_predixy(text), text


def test_looks_like_predixy_on_our_files():
    with open(os.path.join(ROOT, "etc", "proxy.conf"), encoding="utf-8") as f:
        assert not looks_like_predixy(f.read())
    for text in ("Name = geproxy\n", "Include = auth.conf, latency.conf\n", "[ClusterServerPool]\nServers = a:1\n",
                 "## comment\n# Bind 0.0.0.0:7617\nName=geproxy\n", "Password = a b {\n", "", "# only\n\n"):
        assert not looks_like_predixy(text), text


# ---- top-level values ----

def test_comments_case_and_multiword_values(tmp_path):
    got = load_text(tmp_path, """\
bind 127.0.0.1:7617   # trailing comment
workerthreads 2
LogRotate 1d 2G
AllowMissLog false#no space before the comment
BufSize 4096
Log
Name first
Name second
""" + POOL)
    assert got == {"Bind": "127.0.0.1:7617", "WorkerThreads": "2", "LogRotate": "1d 2G", "AllowMissLog": "false",
                   "BufSize": "4096", "Log": "", "Name": "second",
                   "ClusterServerPool": {"Servers": ["127.0.0.1:7000"]}}


def test_quoted_values(tmp_path):
    got = load_text(tmp_path, r'''Name "my proxy  service"
Log "/var/log/a #b.log"   # a comment after the quotes
MaxMemory ""
ClientTimeout "say \"hi\" \\ ok"
ClusterServerPool {
    Password "pass word # not a comment"
    Servers {
        + 127.0.0.1:7000
    }
}
''')
    assert got["Name"] == "my proxy  service"
    assert got["Log"] == "/var/log/a #b.log"
    assert got["MaxMemory"] == ""
    assert got["ClientTimeout"] == 'say "hi" \\ ok'
    assert got["ClusterServerPool"]["Password"] == "pass word # not a comment"


def test_bad_quotes(tmp_path):
    assert "predixy.conf:2: unterminated quoted string" in error_of(tmp_path, 'Name x\nPassword "abc\n')
    assert "predixy.conf:1: unexpected 'x'" in error_of(tmp_path, 'Name "a" x\n')


def test_unknown_keys_pass_through(tmp_path):
    got = load_text(tmp_path, """\
Foo bar baz
WorkerProcesses 3
Extra {
    Key v
    List {
        + a
        - b
    }
}
ClusterServerPool {
    Bogus 1
    Servers {
        + 127.0.0.1:7000
    }
}
""")
    assert got == {"Foo": "bar baz", "WorkerProcesses": "3", "Extra": {"Key": "v", "List": ["a", "-b"]},
                   "ClusterServerPool": {"Bogus": "1", "Servers": ["127.0.0.1:7000"]}}


def test_scalar_and_block_misuse(tmp_path):
    assert "predixy.conf:1: Name takes a value, not a block" in error_of(tmp_path, "Name {\n}\n")
    assert "predixy.conf:1: ClusterServerPool needs a block" in error_of(tmp_path, "ClusterServerPool x\n")
    msg = error_of(tmp_path, "ClusterServerPool {\n    Servers 127.0.0.1:7000\n}\n")
    assert "predixy.conf:2: Servers needs a block" in msg
    msg = error_of(tmp_path, "ClusterServerPool {\n  Servers {\n    127.0.0.1:7000\n  }\n}\n")
    assert "predixy.conf:3: only '+ x' items are allowed in Servers" in msg
    msg = error_of(tmp_path, "ClusterServerPool {\n  Servers {\n    - 127.0.0.1:7000\n  }\n}\n")
    assert "predixy.conf:3:" in msg
    assert "predixy.conf:2: '+ 127.0.0.1:7000' item outside a list block" in error_of(
        tmp_path, "Name x\n+ 127.0.0.1:7000\n")


def test_cluster_pool_details(tmp_path):
    got = load_text(tmp_path, """\
ClusterServerPool {
    Password secret
    Databases 1
    RefreshInterval 500ms
    ServerTimeout 1s
    KeepAlive 120
    Servers {
        + 127.0.0.1:7000
    }
    Servers {
        + 127.0.0.1:7001
    }
}
""")
    assert got == {"ClusterServerPool": {"Password": "secret", "RefreshInterval": "500ms", "ServerTimeout": "1s",
                                         "KeepAlive": "120", "Servers": ["127.0.0.1:7000", "127.0.0.1:7001"]}}
    msg = error_of(tmp_path, "ClusterServerPool {\n    Databases 16\n}\n")
    assert "predixy.conf:2: ClusterServerPool Databases must be 1" in msg


# ---- Authority ----

def test_authority_block(tmp_path):
    got = load_text(tmp_path, """\
Authority {
    Auth "pw" {
        Mode admin
        KeyPrefix a b
        KeyPrefix c
        ReadKeyPrefix d
        WriteKeyPrefix e	f
    }
    AUTH second {
        mode read
    }
    Auth "" {
        Mode write
    }
    Auth "pw" {
        Mode read
    }
}
""" + POOL)["Authority"]
    assert got == {
        "auth1": {"Password": "pw", "Mode": "read"},   # a repeated password replaces the earlier Auth
        "auth2": {"Password": "second", "Mode": "read"},
        "default": {"Mode": "write"},
    }
    assert list(got) == ["auth1", "auth2", "default"]


def test_authority_numbering_skips_the_default(tmp_path):
    got = load_text(tmp_path, "Authority {\n Auth {\n  Mode read\n }\n Auth x {\n  Mode write\n }\n}\n")
    assert got == {"Authority": {"default": {"Mode": "read"}, "auth1": {"Password": "x", "Mode": "write"}}}


def test_authority_errors(tmp_path):
    assert "predixy.conf:2: Authority allows only Auth blocks" in error_of(
        tmp_path, "Authority {\n    Mode read\n}\n")
    assert "predixy.conf:2: Auth needs a block" in error_of(tmp_path, "Authority {\n    Auth pw\n}\n")
    assert "predixy.conf:3: Mode takes a value, not a block" in error_of(
        tmp_path, "Authority {\n Auth {\n  Mode {\n  }\n }\n}\n")


# ---- LatencyMonitor ----

def test_latency_monitors(tmp_path):
    got = load_text(tmp_path, POOL + LATENCY_CONF + """\
LatencyMonitor blist {
    Commands {
        + blpop
    }
}
""")["LatencyMonitor"]
    assert got == {"all": SEED_DICT["LatencyMonitor"]["all"], "get": SEED_DICT["LatencyMonitor"]["get"],
                   "blist": {"Commands": ["blpop"]}}


def test_latency_errors(tmp_path):
    assert "predixy.conf:3: LatencyMonitor 'x' defined twice" in error_of(
        tmp_path, "LatencyMonitor x {\n}\nLatencyMonitor x {\n}\n")
    assert "predixy.conf:1: LatencyMonitor needs a name" in error_of(tmp_path, "LatencyMonitor {\n}\n")
    assert "predixy.conf:3: only '+ x' items are allowed in TimeSpan" in error_of(
        tmp_path, "LatencyMonitor x {\n  TimeSpan {\n    - 100\n  }\n}\n")
    assert "predixy.conf:3: only '+ x' / '- x' items are allowed in Commands" in error_of(
        tmp_path, "LatencyMonitor x {\n  Commands {\n    get\n  }\n}\n")


# ---- Include ----

def test_include_relative_to_the_including_file(tmp_path):
    write(tmp_path, "conf/sub/servers.conf", "+ 127.0.0.1:7001\n")
    write(tmp_path, "conf/sub/pool.conf", "ClusterServerPool {\n  Servers {\n    Include servers.conf\n  }\n}\n")
    write(tmp_path, "conf/predixy.conf", "Name n\nInclude sub/pool.conf\nInclude \"sub/pool.conf\"\n")
    cwd = os.getcwd()
    os.chdir(str(tmp_path))   # not the folder the paths are relative to
    try:
        got = load_predixy(str(tmp_path / "conf" / "predixy.conf"))
    finally:
        os.chdir(cwd)
    assert got == {"Name": "n", "ClusterServerPool": {"Servers": ["127.0.0.1:7001"]}}


def test_include_absolute_path_and_include_order(tmp_path):
    other = write(tmp_path, "elsewhere/top.conf", "Name from-include\nBind 127.0.0.1:1\n")
    got = load_text(tmp_path, "Name own\nInclude %s\nBind 127.0.0.1:2\n" % other)
    assert got == {"Name": "from-include", "Bind": "127.0.0.1:2"}   # later lines win, as in predixy


def test_include_loop(tmp_path):
    write(tmp_path, "a.conf", "Name a\nInclude b.conf\n")
    write(tmp_path, "b.conf", "# b\nInclude a.conf\n")
    with pytest.raises(PredixyConfError) as info:
        load_predixy(str(tmp_path / "a.conf"))
    msg = str(info.value)
    assert msg.startswith(str(tmp_path / "b.conf") + ":2: Include loop")
    assert msg.endswith("a.conf -> %s -> %s" % (tmp_path / "b.conf", tmp_path / "a.conf"))


def test_include_self(tmp_path):
    assert "self.conf:3: Include loop" in error_of(tmp_path, "Name a\n\nInclude self.conf\n", "self.conf")


def test_include_missing_file(tmp_path):
    msg = error_of(tmp_path, "Name a\nInclude nope.conf\n")
    assert msg.startswith(str(tmp_path / "predixy.conf") + ":2: cannot read " + str(tmp_path / "nope.conf"))
    assert "Include needs a file name" in error_of(tmp_path, "Include\n")


def test_missing_top_file(tmp_path):
    with pytest.raises(PredixyConfError) as info:
        load_predixy(str(tmp_path / "absent.conf"))
    assert str(info.value).startswith("cannot read %s" % (tmp_path / "absent.conf"))


# ---- braces ----

def test_unmatched_closing_brace(tmp_path):
    assert "predixy.conf:6: '}' without a matching '{'" in error_of(tmp_path, POOL + "}\n")


def test_unclosed_block(tmp_path):
    msg = error_of(tmp_path, "Name x\nClusterServerPool {\n    Servers {\n        + 127.0.0.1:7000\n    }\n")
    assert "predixy.conf:2: ClusterServerPool { is never closed" in msg


def test_unclosed_block_in_an_included_file(tmp_path):
    write(tmp_path, "pool.conf", "ClusterServerPool {\n    Servers {\n        + 127.0.0.1:7000\n")
    msg = error_of(tmp_path, "Include pool.conf\n}\n")
    assert "pool.conf:1: ClusterServerPool { is never closed" in msg   # the `}` closed Servers


def test_text_after_closing_brace(tmp_path):
    assert "predixy.conf:3: unexpected 'x' after '}'" in error_of(tmp_path, "Authority {\n Auth {\n } x\n}\n")


# ---- pools of groups, and what geproxy does not read yet ----

SENTINEL = """\
## redis sentinel server pool define
SentinelServerPool {
    Databases 16
    Hash crc16
    HashTag "{}"
    Distribution modula
    Sentinels sekret {
        + 10.2.2.2:7500
        + 10.2.2.3:7500
    }
    Group shard001 {
    }
    Group shard002 {
    }
}
"""

STANDALONE = """\
StandaloneServerPool {
    RefreshMethod fixed
    Hash atol
    Group a {
        + 10.0.0.1:6379
        + 10.0.0.2:6379
    }
    Group b {
        + 10.0.0.3:6379
    }
}
"""


def test_sentinel_pool_is_read(tmp_path):
    write(tmp_path, "sentinel.conf", SENTINEL)
    got = load_text(tmp_path, "Name x\nInclude sentinel.conf\n")
    assert got["SentinelServerPool"] == {
        "Databases": "16", "Hash": "crc16", "HashTag": "{}", "Distribution": "modula",
        "Sentinels": ["10.2.2.2:7500", "10.2.2.3:7500"], "SentinelPassword": "sekret",
        "shard001": {"Servers": []}, "shard002": {"Servers": []}}


def test_standalone_pool_is_read(tmp_path):
    got = load_text(tmp_path, STANDALONE)
    assert got == {"StandaloneServerPool": {
        "RefreshMethod": "fixed", "Hash": "atol",
        "a": {"Servers": ["10.0.0.1:6379", "10.0.0.2:6379"]}, "b": {"Servers": ["10.0.0.3:6379"]}}}


@pytest.mark.parametrize("text, message", [
    ("StandaloneServerPool {\n    Group {\n    }\n}\n", "Group needs a name"),
    ("StandaloneServerPool {\n    Group a {\n    }\n    Group a {\n    }\n}\n", "Group 'a' defined twice"),
    ("SentinelServerPool {\n    Servers {\n        + 1.2.3.4:5\n    }\n}\n", "in Group blocks, not Servers"),
])
def test_group_pool_mistakes(tmp_path, text, message):
    assert message in error_of(tmp_path, text)


@pytest.mark.parametrize("text, name", [
    ("LocalDC bj\n", "LocalDC"),
    ("DataCenter {\n    DC bj {\n        AddrPrefix {\n            + 10.1\n        }\n    }\n}\n", "DataCenter"),
    ("CustomCommand {\n    custom.ttl {\n        Mode keyAt2\n    }\n}\n", "CustomCommand"),
])
def test_other_unsupported_settings(tmp_path, text, name):
    msg = error_of(tmp_path, POOL + text)
    assert msg.endswith("predixy.conf:6: %s: geproxy does not support it in predixy's format yet" % name)


def test_brace_without_space_and_lone_brace(tmp_path):
    got = load_text(tmp_path, "ClusterServerPool{\n    Servers{ # seeds\n        + 127.0.0.1:7000\n    }\n}\n")
    assert got == {"ClusterServerPool": {"Servers": ["127.0.0.1:7000"]}}
    assert "predixy.conf:2: expected 'Key value'" in error_of(tmp_path, "ClusterServerPool\n{\n}\n")


def test_repeated_list_blocks_add_up(tmp_path):
    got = load_text(tmp_path, "LatencyMonitor m {\n commands {\n  + get\n }\n Commands {\n  - set\n }\n"
                              " TimeSpan {\n  + 10\n }\n timespan {\n  + 20\n }\n}\n")
    assert got == {"LatencyMonitor": {"m": {"Commands": ["get", "-set"], "TimeSpan": ["10", "20"]}}}
