import t, { type Test } from 'tap'
import { ConfigError, envReader, parseRedisNodes, readRedisTarget, describeRedisTarget } from '../src/index.js'

const read = (env: Record<string, string>) => readRedisTarget(envReader(env))

/** One assertion per input: refused with a ConfigError naming `variable`, and never echoing the password the input carries. */
function refuses (t: Test, env: Record<string, string>, variable: string, message: RegExp): void {
  let error: unknown
  try { read(env) } catch (thrown) { error = thrown }
  const seen = error instanceof ConfigError
    ? { variable: error.variable, message: error.message, echoesPassword: error.message.includes('s3cret') }
    : { thrown: String(error) }
  t.match(seen, { variable, message, echoesPassword: false }, `${JSON.stringify(env)} is refused`)
}

t.test('REDIS_URL alone: one server', async (t) => {
  t.same(read({}), { mode: 'standalone', url: 'redis://127.0.0.1:6379' })
  t.same(read({ REDIS_URL: 'rediss://:pw@redis.internal:6380' }), { mode: 'standalone', url: 'rediss://:pw@redis.internal:6380' })
})

t.test('REDIS_CLUSTER_NODES: seeds as host:port or URLs, credentials and TLS shared', async (t) => {
  t.same(read({ REDIS_CLUSTER_NODES: '10.0.0.1:7000, 10.0.0.2:7001 ,', REDIS_URL: 'redis://ignored:1' }), {
    mode: 'cluster', nodes: [{ host: '10.0.0.1', port: 7000 }, { host: '10.0.0.2', port: 7001 }], tls: false
  })
  t.same(read({ REDIS_CLUSTER_NODES: 'rediss://baton:s%40cret@a.example:6379,rediss://baton:s%40cret@b.example:6379,c.example:6379' }), {
    mode: 'cluster',
    nodes: [{ host: 'a.example', port: 6379 }, { host: 'b.example', port: 6379 }, { host: 'c.example', port: 6379 }],
    tls: true,
    username: 'baton',
    password: 's@cret'
  })
  t.same(parseRedisNodes('X', '[::1]:7000').nodes, [{ host: '::1', port: 7000 }])
  t.equal(describeRedisTarget(read({ REDIS_CLUSTER_NODES: 'redis://:s3cret@a:1,a:2' })), 'cluster a:1,a:2', 'no password in the description')
})

t.test('a bad cluster list names REDIS_CLUSTER_NODES', async (t) => {
  // Every input that can hold a password holds one, so each refusal is also checked for echoing it.
  refuses(t, { REDIS_CLUSTER_NODES: ',' }, 'REDIS_CLUSTER_NODES', /at least one/)
  refuses(t, { REDIS_CLUSTER_NODES: 'redis://:s3cret@a.example' }, 'REDIS_CLUSTER_NODES', /with the port/)
  refuses(t, { REDIS_CLUSTER_NODES: 'redis://:s3cret@a:1/2' }, 'REDIS_CLUSTER_NODES', /database/)
  refuses(t, { REDIS_CLUSTER_NODES: 'http://:s3cret@a:1' }, 'REDIS_CLUSTER_NODES', /protocol/)
  refuses(t, { REDIS_CLUSTER_NODES: 'redis://:s3cret@a:99999' }, 'REDIS_CLUSTER_NODES', /host:port/)
  refuses(t, { REDIS_CLUSTER_NODES: 'rediss://:s3cret@a:1,redis://:s3cret@b:1' }, 'REDIS_CLUSTER_NODES', /same scheme and credentials/)
  refuses(t, { REDIS_CLUSTER_NODES: 'redis://:s3cret%zz@a:1' }, 'REDIS_CLUSTER_NODES', /percent-encoded/)
  refuses(t, { REDIS_CLUSTER_NODES: 'redis://:s3cret@a:1', REDIS_SENTINELS: 'redis://:s3cret@b:2', REDIS_SENTINEL_NAME: 'm' }, 'REDIS_SENTINELS', /REDIS_CLUSTER_NODES/)
})

t.test('REDIS_SENTINELS with REDIS_SENTINEL_NAME: the master the Sentinels watch', async (t) => {
  t.same(read({ REDIS_SENTINELS: 's1:26379,s2:26379', REDIS_SENTINEL_NAME: 'baton' }), {
    mode: 'sentinel', sentinels: [{ host: 's1', port: 26379 }, { host: 's2', port: 26379 }], name: 'baton', tls: false
  })
  t.same(read({ REDIS_SENTINELS: 'rediss://:s3cret@s1:26379', REDIS_SENTINEL_NAME: 'baton', REDIS_SENTINEL_PASSWORD: 'other' }), {
    mode: 'sentinel', sentinels: [{ host: 's1', port: 26379 }], name: 'baton', sentinelPassword: 'other', tls: true, password: 's3cret'
  })
  t.equal(describeRedisTarget(read({ REDIS_SENTINELS: 's1:1', REDIS_SENTINEL_NAME: 'baton' })), 'sentinel master baton via s1:1')
  refuses(t, { REDIS_SENTINELS: 'redis://:s3cret@s1:26379' }, 'REDIS_SENTINEL_NAME', /must name the master/)
  refuses(t, { REDIS_SENTINELS: 'redis://:s3cret@s1:26379', REDIS_SENTINEL_NAME: 'a b' }, 'REDIS_SENTINEL_NAME', /letters/)
  refuses(t, { REDIS_SENTINELS: 'redis://:s3cret@s1', REDIS_SENTINEL_NAME: 'baton' }, 'REDIS_SENTINELS', /with the port/)
  refuses(t, { REDIS_SENTINELS: 'redis://user%@s1:1', REDIS_SENTINEL_NAME: 'baton' }, 'REDIS_SENTINELS', /percent-encoded/)
})
