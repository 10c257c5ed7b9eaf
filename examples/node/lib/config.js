'use strict'
// Command-line values: durations ("250ms", "10s", "2m", "1h") and libpq-style
// DSNs (a URI, or key=value pairs as libpq takes them) turned into pg options.

class UsageError extends Error {}

const UNIT_MS = { ms: 1, s: 1000, m: 60000, h: 3600000 }

function parseDuration (text, what) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(String(text).trim())
  if (!m) {
    throw new UsageError(`${what}: invalid duration '${text}' (expected a number with a unit: 250ms, 10s, 2m, 1h)`)
  }
  return Math.round(Number(m[1]) * UNIT_MS[m[2]])
}

// key=value pairs, values optionally single-quoted with \' and \\ escapes (libpq's rules).
function parseKeywords (dsn) {
  const out = {}
  const re = /\s*([A-Za-z_]+)\s*=\s*('((?:[^'\\]|\\.)*)'|((?:[^\s'\\]|\\.)*))/y
  let rest = dsn.trim()
  while (rest.length > 0) {
    re.lastIndex = 0
    const m = re.exec(rest)
    if (!m) throw new UsageError(`invalid dsn: cannot parse '${rest}'`)
    const raw = m[3] !== undefined ? m[3] : m[4]
    out[m[1]] = raw.replace(/\\(.)/g, '$1')
    rest = rest.slice(m[0].length).trim()
  }
  return out
}

const SSL = {
  disable: false,
  allow: false,
  prefer: false,
  require: { rejectUnauthorized: false },
  'verify-ca': { rejectUnauthorized: true, checkServerIdentity: () => undefined },
  'verify-full': { rejectUnauthorized: true }
}

// pg.Client options for a DSN; PG* environment variables fill what it leaves out (pg's defaults).
function clientOptions (dsn, connectTimeoutMs) {
  const base = { connectionTimeoutMillis: connectTimeoutMs, keepAlive: true, application_name: 'singleton-lock-node' }
  if (/^postgres(ql)?:\/\//.test(dsn)) return { ...base, connectionString: dsn }
  const kw = parseKeywords(dsn)
  const opts = { ...base }
  const map = { host: 'host', port: 'port', user: 'user', dbname: 'database', password: 'password', application_name: 'application_name', options: 'options' }
  for (const [key, value] of Object.entries(kw)) {
    if (map[key]) opts[map[key]] = key === 'port' ? Number(value) : value
    else if (key === 'sslmode') {
      if (!(value in SSL)) throw new UsageError(`invalid dsn: unknown sslmode '${value}'`)
      opts.ssl = SSL[value]
    } else if (key === 'connect_timeout') opts.connectionTimeoutMillis = Number(value) * 1000
    else throw new UsageError(`invalid dsn: parameter '${key}' is not supported by this worker`)
  }
  return opts
}

module.exports = { UsageError, parseDuration, clientOptions, parseKeywords }
