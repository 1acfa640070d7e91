import { createDpopNonces, type DpopNonces } from '@baton/verifier/dpop'
import { derivedKey, type ServerSecret } from '../sessions/refresh-token-codec.js'

/**
 * RFC 9449 §8 server nonces for every instance of the auth-service: the
 * verifier package's stateless nonces (an HMAC of the time period), keyed
 * from the refresh-token secret, which all instances share and which loads
 * from Redis only after start-up; so the nonces are made at first use, and
 * made again if the secret is replaced.
 */
export function sharedDpopNonces (serverSecret: ServerSecret, lifetimeSeconds: number, now: () => number): DpopNonces {
  const key = derivedKey(serverSecret, 'baton dpop-nonce mac')
  let made: { key: Buffer, nonces: DpopNonces } | undefined
  const nonces = (): DpopNonces => {
    const current = key()
    if (made?.key !== current) made = { key: current, nonces: createDpopNonces({ secret: current, lifetimeSeconds, now }) }
    return made.nonces
  }
  return {
    current: () => nonces().current(),
    accepts: (nonce) => nonces().accepts(nonce)
  }
}
