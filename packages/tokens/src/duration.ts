const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 }
const DURATION = /^(\d{1,12})(s|m|h|d|w)?$/

/**
 * Parses a duration written as whole seconds (`900`) or with a unit suffix
 * (`15m`, `14d`) into seconds. Returns `undefined` for anything else, so the
 * caller can name the offending setting in its own error.
 *
 * @example parseDuration('15m') // 900
 */
export function parseDuration (input: string | number): number | undefined {
  if (typeof input === 'number') {
    return Number.isSafeInteger(input) && input >= 0 ? input : undefined
  }
  const match = DURATION.exec(input.trim())
  if (match === null) return undefined
  const seconds = Number(match[1]) * UNIT_SECONDS[match[2] ?? 's']!
  return Number.isSafeInteger(seconds) ? seconds : undefined
}
