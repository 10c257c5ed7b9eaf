'use strict'
// One database connection (pg.Client) whose every query is bounded in time;
// a query we stop waiting for is cancelled in the server (CancelRequest), and
// a broken connection is reported at once, even while idle.
const net = require('net')
const { Client } = require('pg')

const CANCEL_LIMIT_MS = 200 // how long we wait for a cancel request to be delivered

class ConnectionLost extends Error {}
class ReplyTimeout extends ConnectionLost {}

// SQLSTATE classes worth no retry: bad input (22), access/syntax (42), missing schema (3F).
function isFatal (err) {
  const code = sqlstate(err)
  return code !== null && (code.startsWith('22') || code.startsWith('42') || code === '3F000')
}

function sqlstate (err) {
  return err && typeof err.code === 'string' && /^[0-9A-Z]{5}$/.test(err.code) ? err.code : null
}

function isConnectionError (err) {
  if (err instanceof ConnectionLost) return true
  const code = sqlstate(err)
  return code === null || code.startsWith('08') || ['57P01', '57P02', '57P03'].includes(code)
}

// Sends PostgreSQL's CancelRequest for the client's backend; resolves when the
// server closed the cancel connection (it was processed) or after `limitMs`.
function sendCancel (client, limitMs) {
  return new Promise((resolve) => {
    if (!client.processID) return resolve()
    const target = client.host && client.host.startsWith('/')
      ? { path: `${client.host}/.s.PGSQL.${client.port}` }
      : { host: client.host || 'localhost', port: client.port }
    const socket = net.connect(target)
    const timer = setTimeout(() => { socket.destroy(); resolve() }, limitMs)
    socket.on('connect', () => {
      const packet = Buffer.alloc(16)
      packet.writeInt32BE(16, 0)
      packet.writeInt32BE(80877102, 4) // the cancel request code
      packet.writeInt32BE(client.processID, 8)
      packet.writeInt32BE(client.secretKey, 12)
      socket.end(packet)
    })
    socket.on('error', () => {})
    socket.on('close', () => { clearTimeout(timer); resolve() })
  })
}

class Link {
  constructor (client) {
    this.client = client
    this.broken = null
    this.busy = false
    this.onBroken = () => {}
    const broke = (why) => {
      if (!this.broken) { this.broken = why; this.onBroken() }
    }
    client.on('error', (err) => broke(err.message || 'connection error'))
    client.on('end', () => broke('the connection ended'))
  }

  static async open (options) {
    const client = new Client(options)
    client.on('error', () => {}) // reported through Link once it exists
    try {
      await client.connect()
    } catch (err) {
      client.end().catch(() => {})
      throw new ConnectionLost(`could not connect: ${err.message}`)
    }
    return new Link(client)
  }

  async query (text, values, timeoutMs) {
    if (this.broken) throw new ConnectionLost(this.broken)
    this.busy = true
    let timer
    const timeout = new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new ReplyTimeout(`no reply from the server within ${timeoutMs} ms`)), Math.max(0, timeoutMs))
    })
    try {
      const result = await Promise.race([this.client.query(text, values), timeout])
      this.busy = false
      return result.rows
    } catch (err) {
      if (err instanceof ReplyTimeout) await this.abandon()
      else if (isConnectionError(err)) { this.broken = this.broken || err.message; this.close() }
      this.busy = false
      throw err
    } finally {
      clearTimeout(timer)
    }
  }

  // Cancel what is running (bounded), then close.
  async abandon () {
    if (this.busy && !this.broken) await sendCancel(this.client, CANCEL_LIMIT_MS)
    this.busy = false
    this.close()
  }

  close () {
    this.broken = this.broken || 'closed'
    this.client.end().catch(() => {})
  }
}

module.exports = { Link, ConnectionLost, ReplyTimeout, isFatal, isConnectionError, sqlstate, sendCancel }
