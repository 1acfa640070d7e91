import { isClusterClient, type RedisClient } from './client.js'

/** Why this Redis cannot take the service's writes now, or undefined when it can. */
export async function writeProblem (client: RedisClient): Promise<string | undefined> {
  if (client.status !== 'ready') return `redis is ${client.status}`
  if (isClusterClient(client)) {
    // A cluster client stays ready while a master is down; the cluster itself knows better. It routes writes to masters itself.
    const info = await client.cluster('INFO')
    const state = /^cluster_state:(\w+)/m.exec(info)?.[1]
    return state === 'ok' ? undefined : `redis cluster is ${state ?? 'unknown'}`
  }
  // A replica answers reads but refuses every write: not ready to serve logins or refreshes.
  const [role] = await client.role() as [string, ...unknown[]]
  return role === 'master' ? undefined : `redis is a read-only ${role}`
}
