#!/usr/bin/env python3
"""killstorm.py - SIGKILL storm on real metered ffmpeg jobs (TAP).

Eight ffmpeg jobs run at a time on one node database, each with one to
three outputs metered by the `meter` filter (lavfi testsrc read at its own
pace, small pictures, x264 ultrafast: cheap), with a short checkpoint
interval.  100 of them are SIGKILLed, the moments aimed so that every phase
of a metered output is hit:

  opening     before the first frame passed the filter: the session is being
              opened (or the opening process is reaping others' sessions)
  mid-job     frames flowing, no commit in flight
  checkpoint  inside a checkpoint's commit (its WAL sync is in flight)
  finalize    after the last frame passed: the outputs are being finalized

What each output had passed at the moment of the kill is known from the
filter itself: `metadata=1` tags every frame with the output time metered
before it (lavfi.meter.elapsed_us), and a `metadata=mode=print:direct=1`
right behind the filter writes that tag, unbuffered, for every frame that
passed.  The phase is read from what the job left: its frame tags, and the
log of faultvfs.so (tests/faults/faultvfs.c), preloaded into ffmpeg only to
log its database syncs and, for the jobs aimed at a commit, to make each
sync take 30 ms like a busy disk (otherwise a commit lasts microseconds on
tmpfs and no kill lands in one).  Nothing fails.

Then `meterctl reap` (the jobs' own session opens reap the dead sessions
they find, and may themselves be killed while at it), and:

  * meterctl verify passes, PRAGMA integrity_check says ok;
  * no session is left running (or failed);
  * no output is billed twice (one session and at most one usage record
    per job and output, and the record bills what the session holds);
  * every killed output is billed what it had passed, less at most one
    checkpoint interval (and the frame in flight), never more;
  * every job that ran to its end exited 0 and is billed in full.

Figures are printed as TAP diagnostics.  Environment: FFMPEG, METERCTL,
BUILD (for $BUILD/tests/faults/faultvfs.so), TESTS_TMP (tests/run sets
them).  KILLSTORM_KILLS, KILLSTORM_JOBS (concurrency) and KILLSTORM_SEED
override the defaults for a run by hand.  Bounded in time: jobs stop being
started after 150 s.
"""
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

KILLS = int(os.environ.get("KILLSTORM_KILLS", "100"))
CONCURRENCY = int(os.environ.get("KILLSTORM_JOBS", "8"))
SEED = int(os.environ.get("KILLSTORM_SEED", "20261126"))
BUDGET_S = 150

RATE = 25                              # frames per second
FRAME_US = 1000000 // RATE
CLIP_S = 2                             # each job's clip: 50 frames
CLIP_US = CLIP_S * 1000000
CHECKPOINT_US = 200000                 # checkpoint=0.2
SYNC_DELAY_MS = 30
PHASES = ("opening", "mid-job", "checkpoint", "finalize")
MIN_PER_PHASE = 5                      # a phase hit fewer times fails the test
SIZES = (("hi", None), ("lo", "96:72"), ("mid", "128:96"))

FFMPEG = os.environ.get("FFMPEG", "build/bin/ffmpeg")
METERCTL = os.environ.get("METERCTL", "build/bin/meterctl")
BUILD = os.environ.get("BUILD", "build")
SHIM = os.path.join(BUILD, "tests", "faults", "faultvfs.so")

tap_n = 0
tap_failed = 0


def ok(name, good=True, diag=()):
    global tap_n, tap_failed
    tap_n += 1
    if good:
        print(f"ok {tap_n} - {name}")
    else:
        tap_failed += 1
        print(f"not ok {tap_n} - {name}")
        for line in diag:
            for part in str(line).splitlines():
                print(f"#   {part}")
    sys.stdout.flush()


def note(text):
    for line in text.splitlines():
        print(f"# {line}")
    sys.stdout.flush()


def bail(text):
    print(f"Bail out! {text}")
    sys.exit(1)


def meterctl(*args, db):
    r = subprocess.run([METERCTL, "--db", db, *args], capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def meterctl_json(*args, db):
    rc, out, err = meterctl("--format", "json", *args, db=db)
    if rc != 0:
        raise RuntimeError(f"meterctl {' '.join(args)}: exit {rc}: {err.strip()}")
    d = json.loads(out)
    return [d] if isinstance(d, dict) else d


class Tail:
    """New complete lines of a file that another process appends to (kept
    open once it exists: the storm polls every few milliseconds)."""

    def __init__(self, path):
        self.path = path
        self.f = None
        self.rest = b""

    def lines(self):
        if self.f is None:
            try:
                self.f = open(self.path, "rb")
            except FileNotFoundError:
                return []
        data = self.f.read()
        if not data:
            return []
        data = self.rest + data
        *full, self.rest = data.split(b"\n")
        return [x.decode(errors="replace") for x in full]

    def close(self):
        if self.f is not None:
            self.f.close()
            self.f = None


class Job:
    def __init__(self, n, tmp, db, target, rng):
        self.n = n
        self.name = f"ks-{n}"
        self.target = target
        self.outputs = [SIZES[i] for i in range(rng.randint(1, 3))]
        self.meta = {o: Tail(os.path.join(tmp, f"{self.name}.{o}.meta")) for o, _ in self.outputs}
        self.elapsed = {o: None for o, _ in self.outputs}  # last frame's tag
        self.vfs = Tail(os.path.join(tmp, f"{self.name}.vfs"))
        self.in_sync = False
        self.syncs_after_frames = 0
        self.killed = False
        self.phase = None
        self.rc = None
        self.started = time.monotonic()
        self.first_frame_at = None
        self.all_last_at = None
        # when to strike, per target (see due)
        self.kill_after = rng.uniform(0.0, 0.25)
        self.mid_after = rng.uniform(0.05, CLIP_S - 0.4)
        self.nth_sync = rng.randint(1, 4)
        self.coin = rng.random() < 0.5
        # finalize: 0 inside the first commit after the last frames, 1 as
        # soon as they passed, 2 after the first N outputs' final commits
        self.fin_mode = rng.randint(0, 2)
        self.fin_after = rng.randint(1, len(self.outputs))
        self.syncs_done_after_last = 0
        slow = target not in ("mid-job", None)
        chains = []
        for i, (o, scale) in enumerate(self.outputs):
            pre = f"scale={scale}," if scale else ""
            chains.append(
                f"[s{i}]{pre}meter=job={self.name}:output={o}:codec=h264:"
                f"checkpoint={CHECKPOINT_US / 1e6}:metadata=1,"
                f"metadata=mode=print:key=lavfi.meter.elapsed_us:"
                f"file={self.meta[o].path}:direct=1[o{i}]")
        split = f"split={len(self.outputs)}" + "".join(f"[s{i}]" for i in range(len(self.outputs)))
        graph = f"[0:v]{split};" + ";".join(chains)
        cmd = [FFMPEG, "-hide_banner", "-nostdin", "-y", "-re", "-f", "lavfi",
               "-i", f"testsrc=size=160x120:rate={RATE}:duration={CLIP_S}",
               "-filter_complex", graph]
        for i, (o, _) in enumerate(self.outputs):
            cmd += ["-map", f"[o{i}]", "-c:v", "libx264", "-preset", "ultrafast",
                    "-tune", "zerolatency", "-f", "mpegts",
                    os.path.join(tmp, f"{self.name}.{o}.ts")]
        env = dict(os.environ, METER_DB=db, LD_PRELOAD=SHIM, FAULTVFS_MATCH=db,
                   FAULTVFS_OPS="sync", FAULTVFS_LOG=self.vfs.path)
        if slow:
            env["FAULTVFS_SYNC_DELAY_MS"] = str(SYNC_DELAY_MS)
        self.log = os.path.join(tmp, f"{self.name}.log")
        with open(self.log, "wb") as logf:
            self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=subprocess.STDOUT)

    def read(self):
        for o, tail in self.meta.items():
            for line in tail.lines():
                if line.startswith("lavfi.meter.elapsed_us="):
                    self.elapsed[o] = int(line.split("=", 1)[1])
        for line in self.vfs.lines():
            parts = line.split()
            if len(parts) == 5 and parts[2] == "sync":
                self.in_sync = parts[4] == "begin"
                if self.in_sync and self.first_frame_at is not None:
                    self.syncs_after_frames += 1
                if not self.in_sync and self.all_last_at is not None:
                    self.syncs_done_after_last += 1
        now = time.monotonic()
        if self.first_frame_at is None and any(e is not None for e in self.elapsed.values()):
            self.first_frame_at = now
        if self.all_last_at is None and self.at_end():
            self.all_last_at = now

    def at_end(self):
        return all(e is not None and e + FRAME_US >= CLIP_US for e in self.elapsed.values())

    def due(self):
        """Whether to strike now, for this job's target phase."""
        now = time.monotonic()
        framed = self.first_frame_at is not None
        if self.target is None:
            return False  # left to run to its end
        if self.target == "opening":
            return framed or now - self.started >= self.kill_after or (self.in_sync and self.coin)
        if self.target == "mid-job":
            return framed and now - self.first_frame_at >= self.mid_after
        if self.target == "checkpoint":
            return framed and self.in_sync and self.syncs_after_frames >= self.nth_sync
        if self.all_last_at is None:
            return False
        if self.fin_mode == 0:
            return self.in_sync
        if self.fin_mode == 1:
            return True
        return self.syncs_done_after_last >= self.fin_after

    def kill(self):
        """SIGKILL; False when the job had exited already (between the poll
        and the signal: it then ran to its end)."""
        self.proc.send_signal(signal.SIGKILL)
        self.killed = self.proc.wait() == -signal.SIGKILL
        self.finish()
        return self.killed

    def finish(self):
        self.rc = self.proc.wait()
        self.read()  # all it wrote before it died is there now
        for t in list(self.meta.values()) + [self.vfs]:
            t.close()
        if not self.killed:
            self.phase = "ran to the end"
        elif all(e is None for e in self.elapsed.values()):
            self.phase = "opening"
        elif self.at_end():
            self.phase = "finalize"
        elif self.in_sync:
            self.phase = "checkpoint"
        else:
            self.phase = "mid-job"

    def passed(self, o):
        """Output time that passed the filter: up to the end of its last frame."""
        e = self.elapsed[o]
        return 0 if e is None else e + FRAME_US


def storm(tmp, db):
    rng = random.Random(SEED)
    running, done = [], []
    kills = 0
    n = 0
    deadline = time.monotonic() + BUDGET_S
    targets = []
    while True:
        # never more kills aimed than wanted; the last jobs may run to the end
        aimed = sum(1 for j in running if j.target)
        while len(running) < CONCURRENCY and kills + aimed < KILLS and time.monotonic() < deadline:
            if not targets:
                # one job in five is left to run to its end
                targets = list(PHASES) + [None]
                rng.shuffle(targets)
            n += 1
            job = Job(n, tmp, db, targets.pop(), rng)
            running.append(job)
            aimed += job.target is not None
        if not running:
            break
        for j in list(running):
            j.read()
            if j.proc.poll() is not None:
                j.finish()
            elif j.due():
                kills += j.kill()
            else:
                continue
            running.remove(j)
            done.append(j)
        time.sleep(0.002)
    return done


def main():
    print("# kill storm: %d SIGKILLs, %d jobs at a time, seed %d" % (KILLS, CONCURRENCY, SEED))
    for path in (FFMPEG, METERCTL, SHIM):
        if not os.access(path, os.X_OK) and not os.path.isfile(path):
            bail(f"{path} is missing (make, make ffmpeg, make tests)")
    tmp = tempfile.mkdtemp(prefix="killstorm.", dir=os.environ.get("TESTS_TMP"))
    db = os.path.join(tmp, "meter.db")
    for args in (("init",), ("pack", "add", "--type", "general", "--minutes", "1000000")):
        rc, _, err = meterctl(*args, db=db)
        if rc != 0:
            bail(f"meterctl {' '.join(args)}: {err.strip()}")

    t0 = time.monotonic()
    jobs = storm(tmp, db)
    storm_s = time.monotonic() - t0
    killed = [j for j in jobs if j.killed]
    ran = [j for j in jobs if not j.killed]
    ok(f"{KILLS} jobs SIGKILLed within {BUDGET_S} s", len(killed) == KILLS,
       [f"{len(killed)} kills in {storm_s:.0f} s"])

    bad = [j for j in killed if j.rc != -signal.SIGKILL]
    bad += [j for j in ran if j.rc != 0]
    ok("every job that was not killed exited 0 (and every killed one by SIGKILL)", not bad,
       [f"{j.name}: exit {j.rc}, log {j.log}" for j in bad[:5]] +
       [open(bad[0].log, errors="replace").read()[-1500:]] if bad else [])

    by_phase = {p: [j for j in killed if j.phase == p] for p in PHASES}
    few = [p for p in PHASES if len(by_phase[p]) < MIN_PER_PHASE]
    ok(f"every phase was hit at least {MIN_PER_PHASE} times", not few,
       [f"{p}: {len(by_phase[p])} kills" for p in PHASES])

    rc, out, err = meterctl("--format", "json", "reap", db=db)
    reaped = json.loads(out)["reaped"] if rc == 0 else None
    ok("meterctl reap succeeds", rc == 0, [err])

    rc, out, err = meterctl("verify", db=db)
    ok("meterctl verify passes", rc == 0, [out, err])
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    integrity = con.execute("PRAGMA integrity_check").fetchall()
    con.close()
    ok("PRAGMA integrity_check: ok", integrity == [("ok",)], [repr(integrity[:5])])

    sessions = meterctl_json("jobs", "--sessions", db=db)
    usage = meterctl_json("jobs", db=db)
    statuses = {}
    for s in sessions:
        statuses[s["status"]] = statuses.get(s["status"], 0) + 1
    left = [s for s in sessions if s["status"] not in ("done", "interrupted")]
    ok("no session is left running (or failed)", not left,
       [f"{s['job']}/{s['output']}: {s['status']}" for s in left[:10]])

    # per job and output: its session(s) and usage record(s)
    sess_of, use_of = {}, {}
    for s in sessions:
        sess_of.setdefault((s["job"], s["output"]), []).append(s)
    for u in usage:
        use_of.setdefault((u["job"], u["output"]), []).append(u)
    twice = [k for k, v in sess_of.items() if len(v) > 1]
    twice += [k for k, v in use_of.items() if len(v) > 1]
    known = {(j.name, o) for j in jobs for o in j.elapsed}
    stray = [k for k in list(sess_of) + list(use_of) if k not in known]
    ok("no output is billed twice (one session, at most one usage record each)",
       not twice and not stray,
       [f"{k[0]}/{k[1]}: {len(sess_of.get(k, []))} sessions, {len(use_of.get(k, []))} records"
        for k in twice[:10]] + [f"unexpected {k[0]}/{k[1]}" for k in stray[:10]])

    mismatch = []
    for k, ss in sess_of.items():
        billed = sum(u["duration_us"] for u in use_of.get(k, []))
        if len(ss) == 1 and ss[0]["duration_us"] != billed:
            mismatch.append(f"{k[0]}/{k[1]}: session {ss[0]['duration_us']} µs, "
                            f"records {billed} µs")
    ok("every record bills what its session holds", not mismatch, mismatch[:10])

    # killed outputs: billed within one checkpoint interval of what passed
    gap_max = {p: None for p in PHASES}
    over, short, billed_outputs, outputs = [], [], 0, 0
    finalized_in_full = 0
    for j in killed:
        for o in j.elapsed:
            outputs += 1
            billed = sum(u["duration_us"] for u in use_of.get((j.name, o), []))
            billed_outputs += billed > 0
            passed = j.passed(o)
            gap = passed - billed
            if gap_max[j.phase] is None or gap > gap_max[j.phase]:
                gap_max[j.phase] = gap
            if j.phase == "finalize" and billed == CLIP_US:
                finalized_in_full += 1
            if billed > passed:
                over.append(f"{j.name}/{o} ({j.phase}): billed {billed} µs > passed {passed} µs")
            elif gap > CHECKPOINT_US + FRAME_US:
                short.append(f"{j.name}/{o} ({j.phase}): billed {billed} µs, passed {passed} µs")
    ok("no killed output is billed more than it had passed", not over, over[:10])
    ok(f"every killed output is billed within one checkpoint interval "
       f"({CHECKPOINT_US} µs + a {FRAME_US} µs frame) of what it had passed",
       not short, short[:10])

    full_bad = []
    for j in ran:
        for o in j.elapsed:
            billed = sum(u["duration_us"] for u in use_of.get((j.name, o), []))
            if billed != CLIP_US or j.passed(o) != CLIP_US:
                full_bad.append(f"{j.name}/{o}: billed {billed} µs, passed {j.passed(o)} µs, "
                                f"clip {CLIP_US} µs")
    ok("every job that ran to the end is billed its whole clip", not full_bad, full_bad[:10])

    interrupted = statuses.get("interrupted", 0)
    note(f"figures: kills: {len(killed)}, jobs: {len(jobs)} ({len(ran)} ran to the end), "
         f"outputs: {sum(len(j.elapsed) for j in jobs)} ({outputs} of killed jobs), "
         f"storm: {storm_s:.1f} s")
    in_commit = {p: sum(1 for j in by_phase[p] if j.in_sync) for p in PHASES}
    note("figures: kills by phase: " + ", ".join(f"{p} {len(by_phase[p])}" for p in PHASES) +
         "; of them inside a commit (sync in flight): " +
         ", ".join(f"{p} {in_commit[p]}" for p in PHASES))
    note(f"figures: finalize kills: {finalized_in_full} outputs were billed in full (their final "
         f"commit was through), the others at their last checkpoint")
    note(f"figures: outputs billed: {billed_outputs} of {outputs} killed outputs "
         f"(the rest had passed no frame or no checkpoint); "
         f"sessions: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())) +
         f"; reaped by meterctl reap: {reaped}, by the jobs' own opens: "
         f"{interrupted - (reaped or 0)}")
    note(f"figures: max billing gap (passed - billed) vs checkpoint interval {CHECKPOINT_US} µs: " +
         ", ".join(f"{p} {gap_max[p] if gap_max[p] is not None else '-'} µs" for p in PHASES))
    print(f"1..{tap_n}")
    if tap_failed:
        note(f"the jobs' logs, frame tags and faultvfs logs: {tmp}")
    return 1 if tap_failed else 0


if __name__ == "__main__":
    sys.exit(main())
