import { BatonError } from '@baton/tokens'
import { checkDpopProof, DpopError, type DpopNonces, type DpopReplayCache } from '@baton/verifier/dpop'
import type { ClientConfig } from '../clients/clients.js'
import type { Events } from '../events.js'

export interface TokenRequestProofSettings {
  /** The token endpoint's public URL (from ISSUER, never the request's Host): what `htu` must name. */
  tokenEndpoint: string
  algorithms: readonly string[]
  maxAgeSeconds: number
  clockSkewSeconds: number
  /** Server nonces, when every proof must carry one. */
  nonces: DpopNonces | undefined
  replay: DpopReplayCache
  now: () => number
}

/** What a token request's valid proof binds the issued tokens to. */
export interface TokenRequestProof {
  /** RFC 7638 thumbprint of the proof's key: the access token's `cnf.jkt`, the session's bound key. */
  jkt: string
}

/**
 * RFC 9449 §5 at the token endpoint: the request's `DPoP` proof, checked in
 * full (one proof, POST, this endpoint's URL, the window, a `jti` no
 * instance has seen, the nonce when nonces are on). A client registered
 * with `dpop_bound_access_tokens` must send one; the refresh grant leaves
 * that check to the rotation, which must first see whether a proofless
 * refresh is a copy of a bound session's token.
 */
export class TokenRequestProofs {
  readonly #settings: TokenRequestProofSettings

  constructor (settings: TokenRequestProofSettings) {
    this.#settings = settings
  }

  /** The nonce each answer of the token endpoint hands out, when nonces are on. */
  nonce (): string | undefined {
    return this.#settings.nonces?.current()
  }

  /** The proof's key, undefined when the request carries none (and may go without); else a coded 400. */
  async check (header: string | string[] | undefined, client: ClientConfig, grantType: string, events: Events): Promise<TokenRequestProof | undefined> {
    if (header === undefined) {
      if (client.dpopRequired && grantType !== 'refresh_token') throw new BatonError('BATON_INVALID_DPOP_PROOF', 'this client must send a DPoP proof')
      return undefined
    }
    const { nonces, ...settings } = this.#settings
    try {
      const proof = await checkDpopProof(header, {
        method: 'POST',
        url: settings.tokenEndpoint,
        algorithms: settings.algorithms,
        maxAgeSeconds: settings.maxAgeSeconds,
        clockSkewSeconds: settings.clockSkewSeconds,
        now: settings.now,
        replay: settings.replay,
        ...(nonces === undefined ? {} : { nonce: nonces.accepts })
      })
      return { jkt: proof.jkt }
    } catch (error) {
      if (!(error instanceof DpopError)) throw error
      // A nonce challenge is the protocol's normal course, not a refusal worth a line.
      if (error.reason === 'replay') events.audit('dpop.proof_replayed', { client_id: client.client_id, grant_type: grantType })
      else if (error.reason !== 'nonce') events.audit('dpop.proof_refused', { client_id: client.client_id, grant_type: grantType, reason: error.reason })
      throw new BatonError(error.code === 'use_dpop_nonce' ? 'BATON_USE_DPOP_NONCE' : 'BATON_INVALID_DPOP_PROOF', error.message)
    }
  }
}
