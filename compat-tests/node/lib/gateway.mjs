// Starts the gateway binary under test and reads its single stdout ready line.
import { spawn } from 'node:child_process'
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
const READY_TIMEOUT_MS = 30_000
const STOP_TIMEOUT_MS = 30_000
const READY_RE = /^gateway ready kafka=(\S+) namesrv=(\S+) broker=(\S+) metrics=(\S+)(\s.*)?$/

export function gatewayBinary () {
  return process.env.GATEWAY_BIN || path.join(REPO_ROOT, 'target', 'debug', 'gateway')
}

function tail (file, max = 6000) {
  try {
    const s = readFileSync(file, 'utf8')
    return s.slice(-max)
  } catch (e) {
    return `<cannot read ${file}: ${e.message}>`
  }
}

export class Gateway {
  constructor ({ sets = {} } = {}) {
    this.base = mkdtempSync(path.join(tmpdir(), 'gw-node-'))
    this.dataDir = path.join(this.base, 'data')
    mkdirSync(this.dataDir, { recursive: true })
    this.sets = sets
    this.generation = 0
    this.proc = null
    this.addrs = null
    this.logPaths = []
  }

  get bootstrap () { return this.addrs.kafka }
  get host () { return this.addrs.kafka.split(':')[0] }
  get port () { return Number(this.addrs.kafka.split(':')[1]) }
  get metricsUrl () { return `http://${this.addrs.metrics}/metrics` }
  get logPath () { return this.logPaths[this.logPaths.length - 1] }

  args () {
    const args = ['--data-dir', this.dataDir, '--kafka-addr', '127.0.0.1:0', '--namesrv-addr', '127.0.0.1:0',
      '--broker-addr', '127.0.0.1:0', '--metrics-addr', '127.0.0.1:0']
    for (const [k, v] of Object.entries(this.sets)) args.push('--set', `${k}=${v}`)
    return args
  }

  async start () {
    const bin = gatewayBinary()
    if (!existsSync(bin)) {
      throw new Error(`gateway binary not found at ${bin}; build it with \`cargo build -p gateway\` or set GATEWAY_BIN`)
    }
    this.generation += 1
    const logPath = path.join(this.base, `gateway-${this.generation}.stderr.log`)
    this.logPaths.push(logPath)
    const errFd = openSync(logPath, 'w')
    writeFileSync(path.join(this.base, `gateway-${this.generation}.cmd`), [bin, ...this.args()].join(' ') + '\n')
    const proc = spawn(bin, this.args(), { stdio: ['ignore', 'pipe', errFd], cwd: this.base })
    closeSync(errFd)
    this.proc = proc
    this.exited = new Promise(resolve => proc.once('exit', (code, signal) => resolve({ code, signal })))

    const seen = []
    const rl = readline.createInterface({ input: proc.stdout })
    try {
      this.addrs = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`gateway did not print its ready line within ${READY_TIMEOUT_MS} ms`)),
          READY_TIMEOUT_MS)
        rl.on('line', line => {
          seen.push(line)
          const m = READY_RE.exec(line)
          if (m) {
            clearTimeout(timer)
            resolve({ kafka: m[1], namesrv: m[2], broker: m[3], metrics: m[4] })
          }
        })
        proc.once('exit', (code, signal) => {
          clearTimeout(timer)
          reject(new Error(`gateway exited (code ${code}, signal ${signal}) before its ready line`))
        })
        proc.once('error', err => { clearTimeout(timer); reject(err) })
      })
    } catch (e) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
      throw new Error(`${e.message}\ncommand: ${bin} ${this.args().join(' ')}\nstdout: ${JSON.stringify(seen)}\n` +
        `--- stderr (${logPath}) ---\n${tail(logPath)}`)
    }
    // keep draining stdout for the life of the process
    rl.on('line', () => {})
    return this
  }

  running () {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null
  }

  // Graceful stop; resolves to { code, signal }.
  async stop (timeoutMs = STOP_TIMEOUT_MS) {
    if (!this.running()) return this.exited
    this.proc.kill('SIGTERM')
    let timer
    const timeout = new Promise(resolve => { timer = setTimeout(() => resolve(null), timeoutMs) })
    const res = await Promise.race([this.exited, timeout])
    clearTimeout(timer)
    if (res === null) {
      this.proc.kill('SIGKILL')
      await this.exited
      throw new Error(`gateway did not exit within ${timeoutMs} ms of SIGTERM\n${tail(this.logPath)}`)
    }
    return res
  }

  async kill () {
    if (this.running()) this.proc.kill('SIGKILL')
    return this.exited
  }

  async restart () {
    const res = await this.stop()
    await this.start()
    return res
  }

  // Re-throws `err` with the tail of the server's stderr attached.
  annotate (err) {
    const logs = this.logPaths.map(p => `--- gateway stderr ${p} ---\n${tail(p, 3000)}`).join('\n')
    err.message = `${err.message}\n${logs}`
    return err
  }
}

export async function startGateway (opts) {
  const gw = new Gateway(opts)
  await gw.start()
  return gw
}

// Runs `fn(gw)` against a fresh server; always stops it; failures carry the server log.
export async function withGateway (opts, fn) {
  if (typeof opts === 'function') { fn = opts; opts = {} }
  const gw = await startGateway(opts)
  try {
    await fn(gw)
  } catch (e) {
    throw gw.annotate(e)
  } finally {
    if (gw.running()) {
      try { await gw.stop(10_000) } catch { await gw.kill() }
    }
  }
}

export async function waitFor (cond, desc, timeoutMs = 30_000, intervalMs = 50) {
  const deadline = Date.now() + timeoutMs
  let last
  for (;;) {
    try {
      const v = await cond()
      if (v) return v
    } catch (e) {
      last = e
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${desc}` + (last ? `; last error: ${last.message}` : ''))
    }
    await new Promise(resolve => setTimeout(resolve, intervalMs))
  }
}

export function unique (prefix) {
  return `${prefix}-${randomBytes(5).toString('hex')}`
}

// Digs the Kafka error type out of kafkajs' wrapped errors.
export function errorType (e) {
  let cur = e
  for (let i = 0; i < 5 && cur; i++) {
    if (cur.type) return cur.type
    if (Array.isArray(cur.errors) && cur.errors.length && cur.errors[0].type) return cur.errors[0].type
    if (Array.isArray(cur.groups) && cur.groups.length && cur.groups[0].error) return cur.groups[0].error.type
    cur = cur.cause || cur.originalError
  }
  return undefined
}
