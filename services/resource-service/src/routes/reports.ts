import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type, type Static } from 'typebox'
import { ErrorResponseSchema } from '@baton/tokens'

export const ReportSchema = Type.Object({
  id: Type.String(),
  title: Type.String(),
  period: Type.String({ description: 'The period the report covers, e.g. 2026-Q1' }),
  created_at: Type.String({ format: 'date-time' })
})
export const ReportListSchema = Type.Object({ reports: Type.Array(ReportSchema) })
export type ReportList = Static<typeof ReportListSchema>

/** The example data this service protects; a real one would read it from its own store. */
const REPORTS: ReportList['reports'] = [
  { id: 'rpt-2026-q1-usage', title: 'API usage', period: '2026-Q1', created_at: '2026-04-01T08:00:00Z' },
  { id: 'rpt-2026-q1-sessions', title: 'Active sessions', period: '2026-Q1', created_at: '2026-04-01T08:05:00Z' },
  { id: 'rpt-2026-q2-usage', title: 'API usage', period: '2026-Q2', created_at: '2026-07-01T08:00:00Z' }
]

/** The scope `GET /reports` demands. */
export const REPORTS_SCOPE = 'reports:read'

/** `GET /reports`: needs the `reports:read` scope. Expects an authenticating hook in its context. */
export default async function reportRoutes (app: FastifyInstance): Promise<void> {
  app.withTypeProvider<TypeBoxTypeProvider>().get('/reports', {
    preHandler: app.requireScope(REPORTS_SCOPE),
    schema: {
      description: `The reports; needs the scope ${REPORTS_SCOPE}`,
      tags: ['resource'],
      security: [{ bearerAuth: [REPORTS_SCOPE] }, { dpopAuth: [REPORTS_SCOPE] }],
      response: { 200: ReportListSchema, 400: ErrorResponseSchema, 401: ErrorResponseSchema, 403: ErrorResponseSchema }
    }
  }, async (): Promise<ReportList> => ({ reports: REPORTS }))
}
