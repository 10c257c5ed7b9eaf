#!/usr/bin/env node
'use strict'
// A worker that must run as exactly one instance, on the singleton_lock
// PostgreSQL extension with the `pg` driver (the Node twin of examples/python/bot.py).
//
//   node examples/node/worker.js --dsn DSN --name NAME --ledger TABLE [--ttl 10s]
//
// Every instance waits as a healthy standby for as long as it takes. The leader
// prints "leader <token>" once on stdout and inserts (token, pid,
// clock_timestamp()) into TABLE every 100 ms, each insert a transaction that
// first calls singleton_assert(NAME, token). If the lease is lost the work
// stops and the worker waits as a standby again. SIGTERM/SIGINT: stop,
// release, exit 0. Exit codes: 0 stopped by a signal, 1 fatal database error,
// 2 usage error.
const { Elector, Stopped, calls } = require('./lib/elector')
const { Link, sqlstate } = require('./lib/link')
const { UsageError, parseDuration, clientOptions } = require('./lib/config')

const WRITE_EVERY_MS = 100
const USAGE = 'usage: worker.js --dsn DSN --name NAME --ledger TABLE [--ttl 10s]'

function log (message) {
  process.stderr.write(`${new Date().toISOString()} worker[${process.pid}]: ${message}\n`)
}

function parseArgs (argv) {
  const args = { ttl: '10s' }
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]
    if (flag === '-h' || flag === '--help') { process.stdout.write(USAGE + '\n'); process.exit(0) }
    const m = /^--(dsn|name|ledger|ttl)(?:=(.*))?$/.exec(flag)
    if (!m) throw new UsageError(`unknown argument '${flag}'`)
    const value = m[2] !== undefined ? m[2] : argv[++i]
    if (value === undefined) throw new UsageError(`--${m[1]} needs a value`)
    args[m[1]] = value
  }
  for (const required of ['dsn', 'name', 'ledger']) {
    if (args[required] === undefined) throw new UsageError(`--${required} is required`)
  }
  if ([...args.name].length < 1 || [...args.name].length > 255) throw new UsageError('--name must be 1 to 255 characters long')
  const parts = args.ledger.split('.')
  if (parts.length > 2 || parts.some((p) => p === '')) throw new UsageError(`invalid table name '${args.ledger}' (TABLE or SCHEMA.TABLE)`)
  args.table = parts.map((p) => '"' + p.replace(/"/g, '""') + '"').join('.')
  args.ttlMs = parseDuration(args.ttl, '--ttl')
  if (args.ttlMs < 100) throw new UsageError('--ttl must be at least 100ms')
  args.client = clientOptions(args.dsn, 5000)
  return args
}

// The worker's own connection: fenced inserts.
class Ledger {
  constructor (options, table) {
    this.options = options
    this.table = table
    this.link = null
  }

  async insert (lease) {
    if (!this.link || this.link.broken) {
      this.link = await Link.open(this.options)
      await this.link.query(`CREATE TABLE IF NOT EXISTS ${this.table} (token bigint NOT NULL, pid integer NOT NULL, at timestamptz NOT NULL)`, [], 5000)
    }
    if (!lease.held) return // lost meanwhile: send nothing more
    // One statement, one transaction: singleton_assert runs first and, unless
    // our token is still current, raises SQLSTATE 55000 and nothing is inserted.
    // (Named in the schema the elector found, as its own calls.)
    await this.link.query(
      `WITH fence AS (SELECT ${calls(lease.schema).assert}($1, $2::bigint)) INSERT INTO ${this.table} (token, pid, at) SELECT $2::bigint, $3, pg_catalog.clock_timestamp() FROM fence`,
      [lease.name, lease.token, process.pid], 10000)
  }

  close () { if (this.link) { this.link.abandon(); this.link = null } }
}

// Writes while the lease is held and no stop was asked for. Returns 'fenced' if
// the database rejected an insert.
async function work (lease, ledger, stop, grace) {
  while (lease.held && !stop.asked) {
    const insert = ledger.insert(lease).then(() => null, (err) => err)
    // A statement already sent cannot be recalled: after a loss, learn its fate within the grace.
    const err = await Promise.race([insert, lease.lost.then(() => Promise.race([insert, sleep(grace)]))])
    if (err instanceof Error) {
      if (sqlstate(err) === '55000') {
        log(`insert rejected by singleton_assert (token ${lease.token}): ${err.message}`)
        return 'fenced'
      }
      log(`insert failed (token ${lease.token}): ${err.message}`)
      ledger.close() // reconnect at the next tick
    }
    await Promise.race([sleep(WRITE_EVERY_MS), lease.lost, stop.promise])
  }
  return null
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function serve (args) {
  const elector = new Elector({ name: args.name, clientOptions: args.client, ttl: args.ttlMs, log })
  const ledger = new Ledger(args.client, args.table)
  const stop = { asked: false }
  stop.promise = new Promise((resolve) => { stop.resolve = resolve })
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.on(signal, () => {
      if (stop.asked) return
      log(`lease "${args.name}": ${signal}: stopping`)
      stop.asked = true
      stop.resolve()
      elector.stop()
    })
  }
  while (!stop.asked) {
    let lease
    try {
      lease = await elector.acquire()
    } catch (err) {
      if (err instanceof Stopped) break
      log(`giving up: ${err.message} (SQLSTATE ${sqlstate(err)})`)
      return 1
    }
    process.stdout.write(`leader ${lease.token}\n`)
    const fenced = await work(lease, ledger, stop, elector.t.grace)
    ledger.close()
    await elector.release()
    if (!stop.asked) log(`lease "${args.name}": ${fenced || lease.reason}; waiting as a standby again`)
  }
  elector.close()
  log('stopped')
  return 0
}

function main () {
  let args
  try {
    args = parseArgs(process.argv.slice(2))
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    process.stderr.write(`worker.js: ${err.message}\n${USAGE}\n`)
    process.exit(2)
  }
  serve(args).then((code) => process.exit(code), (err) => {
    log(`unexpected error: ${err.stack || err}`)
    process.exit(1)
  })
}

main()
