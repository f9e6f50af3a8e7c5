#!/usr/bin/env python3
"""test_dbfile.py — the ledger's SQLite file holds the node secrets, so it
is its owner's alone (TAP).

Runs with umask 000, the worst case: the database is created 0600 by every
command that can create it, its -wal and -shm files are 0600 while the
server writes, and an existing database (or a -wal left by a crash) that
its group or others may read or write is refused with a one-line error —
before anything is served — until it is chmod'ed 600.  (SQLite itself
gives an empty left-over -wal the database's mode when it opens it.)
"""

import os
import re
import signal
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ledgertest import LEDGERD, Ledger, Tap, tmpdir, usage  # noqa: E402

t = Tap()


def mode(path):
    try:
        return "%04o" % stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return "missing"


def main():
    if not os.access(LEDGERD, os.X_OK):
        print("Bail out! no meter-ledgerd at %s (make ledger)" % LEDGERD)
        sys.exit(1)
    os.umask(0)
    tmp = tmpdir("ledger-dbfile.")
    lg = Ledger("sqlite", tmp)
    db = lg.dbargs[1]
    try:
        rc, out, err = lg.cli("migrate")
        t.ok(rc == 0, "migrate creates the database", err)
        t.eq(mode(db), "0600", "…0600, though the umask is 000")
        for cmd in (["admin", "add", "root"], ["node", "add", "n1"]):
            path = os.path.join(tmp, "first-%s.db" % cmd[0])
            rc, out, err = lg.cli("--db", path, *cmd)
            t.ok(rc == 0 and mode(path) == "0600", "'%s' creating the database: 0600" %
                 " ".join(cmd), (rc, err, mode(path)))

        lg.setup()
        lg.start()
        r = lg.batch([usage("a-u1")])
        t.ok(r.status == 200, "the server writes (a batch)", r)
        r = lg.admin("POST", "/v1/nodes", {"name": "node-c"})
        t.ok(r.status == 201, "…and creates a node", r)
        t.eq((mode(db + "-wal"), mode(db + "-shm")), ("0600", "0600"),
             "while it runs, the -wal and -shm files (the secrets pass through them) are 0600")
        t.eq(lg.stop(), 0, "the server stops")

        for bad in (0o644, 0o640, 0o604, 0o620):
            os.chmod(db, bad)
            rc, out, err = lg.cli("migrate")
            t.ok(rc == 1 and err.count("\n") == 1 and "%04o" % bad in err and "chmod 600" in err,
                 "a database of mode %04o is refused, in one line naming the fix" % bad, err)
        try:
            lg.start()
            exited = None      # it serves: wrong
        except RuntimeError:   # it exited instead of listening
            exited = lg.proc.wait(10)
        t.ok(exited == 1 and "chmod 600" in lg.log_text(),
             "…and not served: the server exits 1 saying why", lg.log_text()[-500:])
        lg.stop()

        # a -wal left by a crash (records in it, not yet in the database),
        # then made readable by others: refused too
        os.chmod(db, 0o600)
        lg.start()
        r = lg.batch([usage("a-u2")])
        t.ok(r.status == 200, "a batch, then the server is killed", r)
        lg.stop(signal.SIGKILL)
        wal = db + "-wal"
        t.ok(os.path.getsize(wal) > 0, "…leaving a -wal with the batch in it")
        os.chmod(wal, 0o644)
        rc, out, err = lg.cli("migrate")
        t.ok(rc == 1 and err.count("\n") == 1 and wal + ": mode 0644" in err,
             "a left-over -wal of mode 0644: refused, naming the file", err)
        if os.path.exists(wal):   # SQLite checkpoints it into the database on close
            os.chmod(wal, 0o600)

        rc, out, err = lg.cli("migrate")
        t.ok(rc == 0, "after chmod 600 the database opens again", err)
        lg.start()
        r = lg.batch([usage("a-u1"), usage("a-u2")])
        t.ok(r.status == 200 and r.json()["duplicates"] == ["a-u1", "a-u2"],
             "…with everything in it, the -wal's batch too", r)
        t.eq(lg.stop(), 0, "the server stops")
        log = open(lg.log).read()
        t.ok(not re.search(r"ERROR: [A-Za-z]+Sanitizer|runtime error: ", log),
             "no sanitizer report in the daemon's log")
    finally:
        lg.close()
    t.done()


if __name__ == "__main__":
    main()
