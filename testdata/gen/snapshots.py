#!/usr/bin/env python3
"""Writes testdata/snapshots/*.json: `picket snapshot --json` documents for
the stories of docs/stories.md, derived from the moscow fixture's golden snapshot
(internal/collect/testdata/moscow.json), for `picket check --snapshot`.
Run from the repository root."""
import copy, json

base = json.load(open("internal/collect/testdata/moscow.json"))
base.pop("root", None)

def group(user, uid, comm, n, rss=4 << 20):
    return {"user": user, "uid": uid, "comm": comm, "count": n, "threads": n, "rss_bytes": n * rss}

def procs(user, uid, comm, first_pid, n, ppid=1, start="2026-11-23T02:00:00Z"):
    return [{"pid": first_pid + i, "ppid": ppid, "user": user, "uid": uid, "comm": comm, "state": "S",
             "start_time": start, "threads": 1, "rss_bytes": 4 << 20, "fds": 5} for i in range(n)]

def finish(s):
    s["processes"]["total"] = len(s["processes"]["list"])
    s["processes"]["threads"] = sum(p["threads"] for p in s["processes"]["list"])
    groups = {}
    for p in s["processes"]["list"]:
        k = (p["user"], p["uid"], p["comm"])
        g = groups.setdefault(k, group(p["user"], p["uid"], p["comm"], 0))
        g["count"] += 1; g["threads"] += p["threads"]; g["rss_bytes"] = g["count"] * (4 << 20)
    s["processes"]["groups"] = sorted(groups.values(), key=lambda g: (-g["count"], g["user"], g["comm"]))
    return s

# the imapd storm: the imapd storm on moscow.
storm = copy.deepcopy(base)
storm["host"] = "moscow"
lst = storm["processes"]["list"]
lst += procs("alice", 1001, "imapd", 1000, 94)          # + the fixture's 6 = 100
lst += procs("bob", 1002, "imapd", 2000, 22)            # + 3 = 25
lst += procs("carol", 1004, "sendmail", 3000, 65)
lst += procs("www-data", 33, "httpd", 4000, 44)         # + nginx's user: httpd 44
lst += procs("nobody", 65534, "ypserv", 5000, 12)
json.dump(finish(storm), open("testdata/snapshots/imapd-storm.json", "w"), indent=1)

# the thrashing web server: apache children on a web server under memory pressure.
thrash = copy.deepcopy(base)
thrash["host"] = "www1"
thrash["processes"]["list"] += procs("www-data", 33, "apache2", 6000, 220, ppid=5999)
thrash["processes"]["list"] += [{"pid": 5999, "ppid": 1, "user": "root", "uid": 0, "comm": "apache2", "state": "S",
                                  "start_time": "2026-11-01T00:00:00Z", "threads": 1, "rss_bytes": 8 << 20, "fds": 12}]
json.dump(finish(thrash), open("testdata/snapshots/apache-thrash.json", "w"), indent=1)

# the frozen V-Server, Out of socket memory, the socket leak: the moscow fixture as it is (orphans 21564 vs 65536,
# numothersock at its barrier with failcnt 17).
json.dump(base, open("testdata/snapshots/moscow.json", "w"), indent=1)
