"""The downstream ledger of the failover scenarios, and its fencing checker.

Where the ledger lives: in the same database cluster as the leases, because
singleton_assert can only fence a transaction of the same database. A write is
one transaction: singleton_assert(name, token) (it holds a FOR KEY SHARE lock on
the lease row until commit), then the downstream's own fence (the highest token
it has accepted, under a row lock that also gives every write its commit order),
then the row. Both verdicts are recorded, so stale attempts are counted too.

What a failover means for it: the ledger and the lease table share one WAL
stream, so a promoted standby holds a prefix of both. A ledger row can only be
there with the tenure that fenced it (the tenure committed first), but rows and
tenures the standby never received are gone together (asynchronous
replication). Those acknowledged-then-lost writes are only visible outside the
cluster: each worker also appends every write the database acknowledged to a
JOURNAL file (ledger_worker.c), which plays an external downstream system with
its own token fence. The checker reads both.

The checks are those of test/scenarios/chaos.sh, over commit order (ledger) or
real-time order (journal), never over processes' clocks:
  - the lease check never let a token through that is below one the fence had
    already accepted;
  - tenures (first..last accepted write of a token) never interleave, tokens
    strictly increase from tenure to tenure, a token belongs to one instance;
  - (journal) the external fence never had to reject a write the database had
    acknowledged: tokens never went backwards, not even across a promotion that
    lost the last tenures.
"""
import os
import subprocess
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))

SCHEMA_SQL = """
CREATE TABLE ha_fence (id int PRIMARY KEY, max_token bigint NOT NULL, next_ord bigint NOT NULL);
INSERT INTO ha_fence VALUES (1, 0, 1);
CREATE TABLE ha_ledger (ord bigint PRIMARY KEY, token bigint NOT NULL, instance text NOT NULL,
                        write_id text NOT NULL UNIQUE, lease_ok boolean NOT NULL,
                        fence_ok boolean NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE ha_probe (at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE FUNCTION ha_ledger_write(p_name text, p_token bigint, p_instance text, p_write_id text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE f ha_fence; lease_ok boolean := true; fence_ok boolean;
BEGIN
  BEGIN
    PERFORM singleton_assert(p_name, p_token);
  EXCEPTION WHEN object_not_in_prerequisite_state THEN
    lease_ok := false;
  END;
  SELECT * INTO f FROM ha_fence WHERE id = 1 FOR UPDATE;
  fence_ok := p_token >= f.max_token;
  UPDATE ha_fence SET next_ord = f.next_ord + 1,
         max_token = CASE WHEN lease_ok AND fence_ok THEN p_token ELSE f.max_token END WHERE id = 1;
  INSERT INTO ha_ledger (ord, token, instance, write_id, lease_ok, fence_ok)
  VALUES (f.next_ord, p_token, p_instance, p_write_id, lease_ok, fence_ok);
  RETURN lease_ok AND fence_ok;
END $$;
"""


def build_worker(workdir):
    """Compiles ledger_worker.c (libpq) into workdir; returns its path."""
    out = os.path.join(workdir, "ledger_worker")
    inc = subprocess.run(["pg_config", "--includedir"], capture_output=True, text=True,
                         check=True).stdout.strip()
    subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", out,
                    os.path.join(HERE, "ledger_worker.c"), "-I" + inc, "-lpq"], check=True)
    return out


@dataclass
class Write:
    """One write, in commit order (ledger) or real-time order (journal)."""
    token: int
    instance: str
    write_id: str
    lease_ok: bool  # the lease check passed (journal: the database acknowledged it)
    fence_ok: bool  # the downstream fence accepted it
    at_ns: int      # server clock (ledger) or the worker's clock (journal)


def read_ledger(conn):
    rows = conn.execute(
        "SELECT token, instance, write_id, lease_ok, fence_ok, "
        "(extract(epoch FROM at) * 1e9)::bigint FROM ha_ledger ORDER BY ord").fetchall()
    return [Write(*r) for r in rows]


def read_journal(path):
    writes = []
    if not os.path.exists(path):
        return writes
    with open(path) as f:
        for line in f:
            wid, tok, inst, db_ok, fence_ok, at = line.split()
            writes.append(Write(int(tok), inst, wid, db_ok == "1", fence_ok == "1", int(at)))
    return writes


@dataclass
class Verdict:
    accepted: int = 0
    stale_rejected: int = 0
    stale_let_through: int = 0  # lease check passed for a token below the fence
    shared_tokens: int = 0
    overlaps: int = 0
    non_increasing: int = 0
    tenures: list = field(default_factory=list)  # tokens in order of their first accepted write
    first_at: dict = field(default_factory=dict)  # token -> at_ns of its first accepted write
    last_at: dict = field(default_factory=dict)

    def problems(self):
        names = ("stale_let_through", "shared_tokens", "overlaps", "non_increasing")
        return [f"{n} = {getattr(self, n)}" for n in names if getattr(self, n)]

    def summary(self):
        return (f"{self.accepted} writes accepted, {self.stale_rejected} stale rejected, "
                f"{len(self.tenures)} tenures; stale let through {self.stale_let_through}, "
                f"overlaps {self.overlaps}, non-increasing {self.non_increasing}, "
                f"shared tokens {self.shared_tokens}")


def check(writes):
    """The fencing checker over writes in their order (see the module doc)."""
    v = Verdict()
    owner, first, last = {}, {}, {}
    max_token = 0
    for i, w in enumerate(writes):
        if w.lease_ok and w.token < max_token:
            v.stale_let_through += 1
        if w.lease_ok:
            if owner.setdefault(w.token, w.instance) != w.instance:
                v.shared_tokens += 1
            if w.token not in first:
                first[w.token] = i
                v.tenures.append(w.token)
                v.first_at[w.token] = w.at_ns
            last[w.token] = i
            v.last_at[w.token] = w.at_ns
        if not (w.lease_ok and w.fence_ok):
            v.stale_rejected += 1
            continue
        v.accepted += 1
        max_token = max(max_token, w.token)
    for prev, cur in zip(v.tenures, v.tenures[1:]):
        if cur <= prev:
            v.non_increasing += 1
        if first[cur] < last[prev]:
            v.overlaps += 1
    return v


def external_fence_rejections(journal):
    """Writes the database acknowledged but the journal's token fence refused."""
    return sum(1 for w in journal if w.lease_ok and not w.fence_ok)


def lost_writes(journal, ledger):
    """Acknowledged writes (journal) that the cluster no longer has (ledger)."""
    kept = {w.write_id for w in ledger}
    return [w for w in journal if w.lease_ok and w.write_id not in kept]
