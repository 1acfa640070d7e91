import { runServer } from '@baton/service-kit'
import { buildApp } from './app.js'
import { loadConfig } from './config.js'

await runServer({ name: 'auth-service', loadConfig, buildApp: async (config) => await buildApp(config) })
