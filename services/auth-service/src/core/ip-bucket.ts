import ipaddr from 'ipaddr.js'

/**
 * The bucket an address is counted in: IPv4 addresses (IPv4-mapped ones
 * too) one by one, IPv6 by /64, the smallest block a single customer gets,
 * so one host cannot dodge the limits by hopping through its own prefix.
 */
export function ipBucket (ip: string): string {
  if (!ipaddr.isValid(ip)) return ip.slice(0, 64)
  const address = ipaddr.process(ip)
  if (address.kind() === 'ipv4') return address.toString()
  const groups = (address as ipaddr.IPv6).parts.slice(0, 4).map((part) => part.toString(16))
  return `${groups.join(':')}::/64`
}
