// No cluster runs in CI, so the Kubernetes manifests are checked offline:
// every object against the Kubernetes API's JSON schemas (kubernetes-models
// ships them compiled), every field name against the API's types (a
// misspelt `readinesProbe` is silently dropped by the schemas, not by a type
// check), and what they promise against what the services do.
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { parse, parseAllDocuments } from 'yaml'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const DIR = join(ROOT, 'deploy', 'kubernetes')

type Json = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

interface Kustomization {
  resources: string[]
  secretGenerator: Array<{ name: string, files: string[] }>
  images: Array<{ name: string }>
}

const kustomization = parse(readFileSync(join(DIR, 'kustomization.yaml'), 'utf8')) as Kustomization
const documents: Array<{ file: string, object: Json }> = kustomization.resources.flatMap((file) =>
  parseAllDocuments(readFileSync(join(DIR, file), 'utf8')).map((document) => {
    if (document.errors.length > 0) throw new Error(`${file}: ${document.errors[0]!.message}`)
    return { file, object: document.toJS() as Json }
  }))

/** `apps/v1` → `apps/v1`, `v1` → `v1`: kubernetes-models' module path for an apiVersion and kind. */
const modelPath = (object: Json): string => `kubernetes-models/${String(object.apiVersion)}/${String(object.kind)}`

function find (kind: string, name: string): Json {
  const found = documents.find(({ object }) => object.kind === kind && object.metadata?.name === name)
  if (found === undefined) throw new Error(`no ${kind} ${name}`)
  return found.object
}

t.test('every object is valid against the Kubernetes API schemas', async (t) => {
  t.ok(documents.length >= 10, `${documents.length} objects in ${kustomization.resources.length} files`)
  for (const { file, object } of documents) {
    const label = `${file}: ${String(object.kind)} ${String(object.metadata?.name)}`
    let Model: new (data: Json) => { validate: () => void }
    try {
      Model = (await import(modelPath(object)) as Record<string, new (data: Json) => { validate: () => void }>)[object.kind]!
    } catch {
      t.fail(`${label}: no such apiVersion and kind`)
      continue
    }
    t.doesNotThrow(() => { new Model(object).validate() }, label)
  }
})

t.test('no field the API does not know, at any depth', async (t) => {
  // Each object becomes a typed constant; TypeScript's excess-property check then names any unknown field.
  const lines = documents.map(({ object }, index) =>
    `import type { I${String(object.kind)} as T${index} } from '${modelPath(object)}'\nexport const o${index}: T${index} = ${JSON.stringify(object)}`)
  const file = join(ROOT, 'deploy', 'test', '__manifests__.ts')
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022,
    strict: true, noEmit: true, skipLibCheck: true, types: []
  }
  const host = ts.createCompilerHost(options)
  const source = lines.join('\n')
  const getSourceFile = host.getSourceFile.bind(host)
  host.getSourceFile = (name, language, ...rest) => name === file ? ts.createSourceFile(name, source, language) : getSourceFile(name, language, ...rest)
  const fileExists = host.fileExists.bind(host)
  host.fileExists = (name) => name === file || fileExists(name)
  const program = ts.createProgram([file], options, host)
  const diagnostics = ts.getPreEmitDiagnostics(program).map((diagnostic) => {
    const text = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')
    if (diagnostic.file?.fileName !== file || diagnostic.start === undefined) return text
    const line = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start).line
    const { file: manifest, object } = documents[Math.floor(line / 2)]!
    return `${manifest}: ${String(object.kind)} ${String(object.metadata?.name)}: ${text.split('\n').at(-1)!}`
  })
  t.same(diagnostics, [], 'every field is one the API defines, with the right type')
})

t.test('the kustomization: its files exist, its secrets stay out of the repository', async (t) => {
  for (const file of kustomization.resources) t.ok(existsSync(join(DIR, file)), file)
  const ignored = readFileSync(join(DIR, 'secrets', '.gitignore'), 'utf8').split('\n')
  t.ok(ignored.includes('*'), 'secrets/ ignores everything but its examples')
  for (const generator of kustomization.secretGenerator) {
    for (const source of generator.files) t.match(source, /^[\w.-]+=secrets\/[\w.-]+$/, `${generator.name}: ${source} comes from secrets/`)
  }
  const images = new Set(kustomization.images.map((image) => image.name))
  for (const { object } of documents) {
    for (const container of object.spec?.template?.spec?.containers ?? []) {
      if (container.image === 'baton') t.ok(images.has('baton'), `${String(container.name)}: the image is set in one place`)
    }
  }
})

// What a service does on SIGTERM: packages/service-kit's runServer.
const SERVICE_GRACE_S = Number(/gracePeriodMs \?\? ([\d_]+)/.exec(readFileSync(join(ROOT, 'packages/service-kit/src/server.ts'), 'utf8'))![1]!.replace(/_/g, '')) / 1000
// The benchmark's RSS at the end of every scenario, as docs/performance.md states it.
const RSS = /resource\s+≤ (\d+) MB[^,]*, auth ≤ (\d+) MB/.exec(readFileSync(join(ROOT, 'docs/performance.md'), 'utf8'))
// Every variable the configuration tables of docs/configuration.md name (first column).
const CONFIGURABLE = new Set([...readFileSync(join(ROOT, 'docs/configuration.md'), 'utf8').matchAll(/^\|([^|\n]*)\|/gm)]
  .flatMap((row) => [...row[1]!.matchAll(/`([A-Z][A-Z_0-9]+)`/g)].map((match) => match[1]!)))

const mebibytes = (quantity: string): number => {
  const match = /^(\d+)(Mi|Gi)$/.exec(quantity)
  if (match === null) throw new Error(`unexpected quantity ${quantity}`)
  return Number(match[1]) * (match[2] === 'Gi' ? 1024 : 1)
}

for (const [service, port, rssFigure] of [['auth-service', 3001, 2], ['resource-service', 3002, 1]] as const) {
  t.test(`${service}: probes, graceful termination, resources and secrets as the service needs them`, async (t) => {
    const deployment = find('Deployment', `baton-${service}`)
    const pod = deployment.spec.template.spec as Json
    const [container] = pod.containers as Json[]
    const env = new Map((container!.env as Json[]).map((variable) => [variable.name as string, variable]))
    t.same(container!.command, ['node', `services/${service}/dist/server.js`], 'node runs the server itself, and so receives SIGTERM')
    t.equal(env.get('PORT')?.value, String(port))
    t.equal(env.get('HOST')?.value, '0.0.0.0')
    t.same(container!.ports, [{ name: 'http', containerPort: port }])
    t.match(container!.readinessProbe, { httpGet: { path: '/readyz', port: 'http' } }, 'traffic follows /readyz')
    t.match(container!.livenessProbe, { httpGet: { path: '/healthz', port: 'http' } }, 'restarts follow /healthz, which never depends on Redis')
    t.match(container!.startupProbe, { httpGet: { path: '/healthz', port: 'http' } })

    const preStop = container!.lifecycle.preStop.exec.command as string[]
    t.equal(preStop[0], 'sleep')
    t.ok(pod.terminationGracePeriodSeconds >= Number(preStop[1]) + SERVICE_GRACE_S + 1,
      `terminationGracePeriodSeconds ${String(pod.terminationGracePeriodSeconds)} covers preStop ${preStop[1]!} s + the service's ${SERVICE_GRACE_S} s grace`)

    t.ok(RSS !== null, 'docs/performance.md states the benchmark\'s RSS')
    const rssMiB = Number(RSS![rssFigure]) * 1e6 / 2 ** 20
    const { requests, limits } = container!.resources as { requests: Json, limits: Json }
    t.ok(mebibytes(requests.memory) >= rssMiB, `memory request ${String(requests.memory)} holds the measured ${RSS![rssFigure]!} MB`)
    t.ok(mebibytes(limits.memory) >= 1.5 * rssMiB, `memory limit ${String(limits.memory)} leaves half again as much headroom`)
    t.ok(requests.cpu !== undefined, 'a CPU request')

    // Every variable set is one the service reads (docs/configuration.md); secrets come from Secrets only.
    const configMap = find('ConfigMap', 'baton-config')
    const names = [...env.keys(), ...Object.keys(configMap.data as Json)]
    for (const name of names) {
      if (name !== 'REDIS_PASSWORD') t.ok(CONFIGURABLE.has(name), `${name} is a documented variable`)
    }
    const generated = new Map(kustomization.secretGenerator.map((generator) => [generator.name, generator.files.map((file) => file.split('=')[0])]))
    for (const [name, variable] of env) {
      if (/PASSWORD|SECRET|CLIENTS/.test(name)) t.ok(variable.valueFrom?.secretKeyRef !== undefined, `${name} comes from a Secret`)
      const ref = variable.valueFrom?.secretKeyRef as Json | undefined
      if (ref !== undefined) t.ok(generated.get(ref.name)?.includes(ref.key), `${name}: ${String(ref.name)} holds ${String(ref.key)}`)
    }
    t.match(env.get('REDIS_URL')?.value, /^redis:\/\/:\$\(REDIS_PASSWORD\)@baton-redis:6379$/, 'Redis, with the password from its Secret')

    const exposed = find('Service', `baton-${service}`)
    t.same(exposed.spec.selector, deployment.spec.template.metadata.labels, 'the Service selects these pods')
    t.same(exposed.spec.ports, [{ name: 'http', port, targetPort: 'http' }])
    t.same(find('PodDisruptionBudget', `baton-${service}`).spec.selector.matchLabels, deployment.spec.selector.matchLabels, 'a disruption budget covers them')
    t.equal(container!.securityContext.readOnlyRootFilesystem, true)
    t.equal(pod.securityContext.runAsNonRoot, true)
  })
}

t.test('auth-service: the signing key and client secrets are mounted from the Secret', async (t) => {
  const pod = find('Deployment', 'baton-auth-service').spec.template.spec as Json
  const container = pod.containers[0] as Json
  const keyFile = (container.env as Json[]).find((variable) => variable.name === 'SIGNING_KEY_FILE')!.value as string
  const mount = (container.volumeMounts as Json[]).find((candidate) => candidate.mountPath === dirname(keyFile))!
  t.ok(mount !== undefined && mount.readOnly === true, `${keyFile} lies in a read-only mount`)
  const volume = (pod.volumes as Json[]).find((candidate) => candidate.name === mount.name)!
  t.equal(volume.secret.secretName, 'baton-auth')
  t.same(volume.secret.items, [{ key: 'signing.pem', path: keyFile.split('/').at(-1) }], 'only the key is mounted')
  t.equal(volume.secret.defaultMode, 0o400)
})

t.test('Redis: one primary with its append-only file on a persistent volume', async (t) => {
  const statefulSet = find('StatefulSet', 'baton-redis')
  const container = statefulSet.spec.template.spec.containers[0] as Json
  const command = (container.command as string[]).join(' ')
  t.match(command, /--appendonly yes/)
  t.match(command, /--appendfsync everysec/)
  t.match(command, /--requirepass "\$REDIS_PASSWORD"/)
  t.equal(statefulSet.spec.replicas, 1)
  const [claim] = statefulSet.spec.volumeClaimTemplates as Json[]
  t.same((container.volumeMounts as Json[]).map((mount) => [mount.name, mount.mountPath]), [[claim!.metadata.name, '/data']])
  t.equal(find('Service', 'baton-redis').spec.ports[0].port, 6379)
})
