'use strict'
// Leader election over a singleton_lock lease, with the same rules as the C++
// and Python clients: a standby waits in server-side slices of at most 1 s
// (woken at once when the lease is freed) and reconnects with capped, jittered
// backoff; the leader heartbeats every ttl/3 on the holding connection and
// counts the lease from the send time of its last confirmed heartbeat: when
// the time left falls to grace + margin, a heartbeat is refused or the
// connection breaks, the lease is lost.
const os = require('os')
const crypto = require('crypto')
const { escapeIdentifier } = require('pg')
const { Link, ReplyTimeout, isFatal, isConnectionError } = require('./link')

const now = () => Number(process.hrtime.bigint() / 1000000n) // monotonic, ms
const clamp = (v, lo, hi) => Math.max(lo, Math.min(v, hi))

function makeTiming (ttl) {
  return {
    ttl,
    grace: ttl / 4,
    heartbeat: ttl / 3,
    margin: Math.min(ttl / 10, 1000),
    heartbeatRetry: clamp(ttl / 20, 20, 1000),
    waitSlice: 1000,
    replySlack: clamp(ttl / 2, 1000, 10000),
    connectTimeout: clamp(ttl / 2, 2000, 30000),
    releaseTimeout: clamp(ttl / 2, 500, 5000)
  }
}

// The longest wait a statement_timeout (ms; 0: off) lets end on its own, with
// room for the rest of the statement (as the C++ and Python clients do).
function withinStatementTimeout (wait, statementTimeout) {
  if (!(statementTimeout > 0)) return wait
  const headroom = Math.max(statementTimeout / 5, 50)
  const longest = statementTimeout > 2 * headroom ? statementTimeout - headroom : statementTimeout / 2
  return Math.min(wait, Math.max(Math.floor(longest), 1))
}

// Our functions, named in the extension's schema (found at connect): never
// through the search_path, where a role with CREATE on the database could put a
// schema named after our role ("$user", searched first) whose singleton_acquire
// would run with our role's rights. (Not installed: setUp refuses.)
function calls (schema) {
  const fn = (name) => `${escapeIdentifier(schema)}.${name}`
  return {
    acquire: `SELECT acquired, token::text AS token, holder, expires_at FROM ${fn('singleton_acquire')}($1, $2::interval, $3, $4::interval)`,
    heartbeat: `SELECT ${fn('singleton_heartbeat')}($1, $2::bigint, $3::interval) AS expires_at`,
    release: `SELECT ${fn('singleton_release')}($1, $2::bigint) AS released`,
    assert: fn('singleton_assert') // for the worker's fenced inserts
  }
}

const SQL = {
  // First at connect: the transactions' defaults, whatever the role's or
  // database's. READ COMMITTED (under REPEATABLE READ or SERIALIZABLE the
  // server refuses a waiting acquire), read-write (under a read-only default
  // every call but the watch is refused), not deferrable. A statement of its
  // own (defaults apply from the next transaction), and a SET: with the
  // defaults SERIALIZABLE, READ ONLY and DEFERRABLE together any statement
  // that takes a snapshot (a SELECT, even of constants) first waits for a safe
  // one, as long as the serializable read-write transactions then open run;
  // a SET takes none.
  characteristics: 'SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED, READ WRITE, NOT DEFERRABLE',
  // Then: the binding setting; the session's statement_timeout (or
  // transaction_timeout, PostgreSQL 17, if shorter), which our waits stay
  // under; idle_session_timeout off for the session, which idles between
  // heartbeats by design (ended by the server, it would end leadership); no
  // lock_timeout (a standby's acquire and a release queue for the lease behind
  // the leader's asserting transactions; our own timeouts bound each call);
  // UTF8, which pg sends whatever the role's client_encoding (else a role's
  // LATIN1 would make "zürich" another lease than other clients'), and ISO
  // dates, the only style pg reads. Last, the extension's schema (calls()
  // above); built-ins are pg_catalog's for the same reason, and operands have
  // the exact types of pg_catalog's operators (an operator elsewhere needing
  // no cast, numeric = integer, would beat pg_catalog's).
  bindSession: "SELECT pg_catalog.current_setting('singleton_lock.bind_session', true) AS bind, " +
    "coalesce(least(nullif(extract(epoch FROM pg_catalog.current_setting('statement_timeout')::interval), 0::numeric), " +
    "nullif(extract(epoch FROM coalesce(pg_catalog.current_setting('transaction_timeout', true), '0')::interval), 0::numeric))" +
    " * 1000::numeric, 0::numeric)::float8 AS stmt_ms, " +
    "pg_catalog.set_config('idle_session_timeout', '0', false) AS idle, " +
    "pg_catalog.set_config('lock_timeout', '0', false) AS lock_wait, " +
    "pg_catalog.set_config('client_encoding', 'UTF8', false) AS encoding, " +
    "pg_catalog.set_config('DateStyle', 'ISO', false) AS dates, " +
    "(SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n " +
    "ON n.oid = e.extnamespace WHERE e.extname = 'singleton_lock') AS schema"
}

class Stopped extends Error {}

// A sleep that wake() ends early.
class Wake {
  constructor () { this.resolve = null }
  sleep (ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, ms))
      this.resolve = () => { clearTimeout(timer); resolve() }
    })
  }

  wake () { if (this.resolve) this.resolve() }
}

class Lease {
  constructor (name, token, schema) {
    this.name = name
    this.token = token // text: compare as BigInt, never decode
    this.schema = schema // the extension's, for calls()
    this.reason = null // null while held; 'released' or why it was lost
    this.lost = new Promise((resolve) => { this.end = resolve })
  }

  get held () { return this.reason === null }
  finish (reason) { if (this.reason === null) { this.reason = reason; this.end(reason) } }
}

class Elector {
  constructor ({ name, clientOptions, ttl, log }) {
    this.name = name
    this.holder = `${os.hostname()}:${process.pid}:${crypto.randomBytes(6).toString('hex')}`
    this.options = clientOptions
    this.t = makeTiming(ttl)
    this.log = log
    this.link = null
    this.stopping = false
    this.attempt = 0
    this.lastError = ''
    this.wake = new Wake()
    this.unreleased = null
  }

  backoff () {
    const base = Math.min(5000, 100 * 2 ** Math.min(this.attempt++, 20))
    return base / 2 + Math.random() * base / 2
  }

  // Our session's own settings, first on every connection (SQL above); the
  // second statement's row. The link's calls name the schema found there.
  async setUp (link, timeoutMs) {
    await link.query(SQL.characteristics, [], timeoutMs)
    const [row] = await link.query(SQL.bindSession, [], timeoutMs)
    if (row.schema == null) { // nothing to name: an unqualified call could find someone else's
      throw Object.assign(new Error('the extension singleton_lock is not installed in this database (CREATE EXTENSION singleton_lock)'), { code: '42704' })
    }
    link.schema = row.schema
    link.calls = calls(row.schema)
    return row
  }

  async connected () {
    while (!this.link || this.link.broken) {
      try {
        const link = await Link.open({ ...this.options, connectionTimeoutMillis: this.t.connectTimeout })
        const { bind, stmt_ms: stmtMs } = await this.setUp(link, this.t.replySlack)
        this.statementTimeout = Number(stmtMs) || 0
        if (bind !== 'off') { // LISTEN needs a direct connection (not a transaction pooler)
          link.client.on('notification', (n) => this.onNotify(n, link))
          await link.query('LISTEN singleton_lock', [], this.t.replySlack)
        }
        this.link = link
      } catch (err) {
        await this.afterError(err)
      }
    }
    return this.link
  }

  async afterError (err) {
    if (this.link) { this.link.close(); this.link = null }
    if (this.stopping) throw new Stopped()
    if (isFatal(err)) throw err
    const delay = this.backoff()
    if (err.message !== this.lastError) {
      this.lastError = err.message
      this.log(`lease "${this.name}": ${err.message}; retrying in ${Math.round(delay)} ms`)
    }
    await this.wake.sleep(delay)
    if (this.stopping) throw new Stopped()
  }

  // Waits as a standby until the lease is ours. Throws Stopped after stop(),
  // or a fatal database error (extension missing, permission denied).
  async acquire () {
    if (this.unreleased) await this.releaseAfterLoss()
    let first = true
    this.attempt = 0
    for (;;) {
      if (this.stopping) throw new Stopped()
      const link = await this.connected()
      const slice = first ? 0 : withinStatementTimeout(this.t.waitSlice, this.statementTimeout)
      const sent = now()
      let row
      try {
        [row] = await link.query(link.calls.acquire, [this.name, `${this.t.ttl} milliseconds`, this.holder, `${slice} milliseconds`], slice + this.t.replySlack)
      } catch (err) {
        await this.afterError(err)
        continue
      }
      first = false
      this.attempt = 0
      if (row.acquired) {
        const lease = await this.take(link, row.token, sent, slice > 0)
        if (lease) return lease
      } else if (row.holder !== this.seenHolder) {
        this.seenHolder = row.holder
        this.log(`lease "${this.name}": standby, held by ${row.holder} until ${row.expires_at.toISOString()}`)
      }
    }
  }

  // After a long server-side wait the lease is confirmed with a heartbeat first.
  async take (link, token, sent, waited) {
    let confirmedAt = sent
    this.heartbeatNow = false
    if (waited && now() + this.t.heartbeat >= sent + this.t.ttl - this.t.grace - this.t.margin) {
      const hbSent = now()
      try {
        const [{ expires_at: expires }] = await link.query(link.calls.heartbeat, [this.name, token, `${this.t.ttl} milliseconds`], this.t.replySlack)
        if (expires === null) return null
      } catch (err) {
        await this.afterError(err)
        return null
      }
      confirmedAt = hbSent
    } else if (waited) {
      this.heartbeatNow = true // confirm at once; the count moves to it
    }
    const lease = new Lease(this.name, token, link.schema)
    this.confirmed = confirmedAt
    this.nextHeartbeat = confirmedAt + this.t.heartbeat
    this.releaseRequested = false
    link.onBroken = () => this.wake.wake()
    this.log(`lease "${this.name}": leader, token ${token}`)
    this.keeper = this.keep(link, lease)
    return lease
  }

  stepDownAt () { return this.confirmed + this.t.ttl - this.t.grace - this.t.margin }

  async keep (link, lease) {
    for (;;) {
      const t = now()
      if (t >= this.stepDownAt()) return this.lose(lease, 'deadline', 'no heartbeat confirmed in time')
      if (link.broken) return this.lose(lease, 'connection lost', link.broken)
      if (this.releaseRequested) return this.doRelease(link, lease)
      if (this.heartbeatNow || t >= this.nextHeartbeat) {
        await this.heartbeat(link, lease)
        if (!lease.held) return null
        continue
      }
      await this.wake.sleep(Math.min(this.nextHeartbeat, this.stepDownAt()) - t)
    }
  }

  async heartbeat (link, lease) {
    this.heartbeatNow = false
    const sent = now()
    let expires
    try {
      [{ expires_at: expires }] = await link.query(link.calls.heartbeat, [this.name, lease.token, `${this.t.ttl} milliseconds`], this.stepDownAt() - sent)
    } catch (err) {
      if (err instanceof ReplyTimeout) return this.lose(lease, 'deadline', 'heartbeat not confirmed in time')
      if (isConnectionError(err)) return this.lose(lease, 'connection lost', err.message)
      if (isFatal(err)) return this.lose(lease, 'refused', err.message)
      this.log(`lease "${this.name}": heartbeat failed: ${err.message}`)
      this.nextHeartbeat = now() + this.t.heartbeatRetry
      return
    }
    if (expires === null) return this.lose(lease, 'refused', 'singleton_heartbeat returned NULL')
    this.confirmed = Math.max(this.confirmed, sent)
    this.nextHeartbeat = this.confirmed + this.t.heartbeat
  }

  onNotify (notification, link) {
    if (notification.payload === this.name && notification.processId !== link.client.processID) {
      this.heartbeatNow = true // someone else changed our lease: check at once
      this.wake.wake()
    }
  }

  lose (lease, reason, detail) {
    if (this.link) { this.link.close(); this.link = null }
    if (reason !== 'refused') this.unreleased = lease // may still be ours on the server
    this.log(`lease "${this.name}": LOST (${reason}: ${detail})`)
    lease.finish(reason)
    return null
  }

  async doRelease (link, lease) {
    let released = false
    try {
      const [row] = await link.query(link.calls.release, [this.name, lease.token], this.t.releaseTimeout)
      released = row.released === true
      this.log(`lease "${this.name}": released${released ? '' : ' (it was no longer ours)'}`)
    } catch (err) {
      this.log(`lease "${this.name}": release failed: ${err.message}`)
      this.unreleased = lease
    }
    lease.finish('released')
    if (this.link) { this.link.close(); this.link = null }
    return this.unreleased ? this.releaseAfterLoss() : released
  }

  // Frees a lease we lost but may still hold on the server (a restart keeps a
  // lease live until start + ttl unless released with its token), for at most a ttl.
  async releaseAfterLoss () {
    const lease = this.unreleased
    this.unreleased = null
    const giveUpAt = now() + this.t.ttl
    for (this.attempt = 0; ;) {
      let link = null
      try {
        link = await Link.open({ ...this.options, connectionTimeoutMillis: this.t.connectTimeout })
        await this.setUp(link, this.t.replySlack) // (our session's settings first)
        const [row] = await link.query(link.calls.release, [this.name, lease.token], this.t.releaseTimeout)
        this.log(`lease "${this.name}": token ${lease.token} ${row.released ? 'released' : 'was no longer ours'} after the loss`)
        return row.released === true
      } catch (err) {
        const delay = this.backoff()
        if (isFatal(err) || this.stopping || now() + delay >= giveUpAt) return false
        await this.wake.sleep(delay)
      } finally {
        if (link) link.close()
      }
    }
  }

  // Leader: release (a waiting standby takes over in milliseconds). After a
  // loss: release-after-loss. Standby: nothing (see stop()).
  async release () {
    if (this.keeper) {
      const keeper = this.keeper
      this.keeper = null
      this.releaseRequested = true
      this.wake.wake()
      const result = await keeper
      if (result !== null) return result
    }
    return this.unreleased ? this.releaseAfterLoss() : false
  }

  // Stop waiting: the in-flight acquire is cancelled in the server.
  stop () {
    this.stopping = true
    this.wake.wake()
    if (this.link && !this.keeper && this.link.busy) this.link.abandon()
  }

  close () { if (this.link) { this.link.close(); this.link = null } }
}

module.exports = { Elector, Stopped, makeTiming, calls }
