import t from 'tap'
import { RedisBudget, RedisBudgetSpentError, runWithRedisBudget, withinRedisBudget, withoutRedisBudget } from '../src/redis/budget.js'

const never = new Promise<never>(() => {})
const idle = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

t.test('only time spent waiting for a call counts', async (t) => {
  const budget = new RedisBudget(200)
  t.equal(await budget.wait(Promise.resolve('reply')), 'reply', 'a reply passes through')
  // Hashing a password, say: no call outstanding. Counted, it alone would spend the budget twice over.
  await idle(400)
  t.ok(budget.remainingMs() > 0, `${budget.remainingMs()} ms left after time spent elsewhere`)
})

t.test('the calls of one budget share it: once spent, the next call fails at once', async (t) => {
  const budget = new RedisBudget(200)
  const started = performance.now()
  await t.rejects(budget.wait(never), RedisBudgetSpentError, 'a call that gets no reply fails when the budget is spent')
  t.ok(performance.now() - started >= 190, 'not before')
  t.ok(budget.remainingMs() <= 0)
  const again = performance.now()
  await t.rejects(budget.wait(never), RedisBudgetSpentError, 'the next call fails')
  t.ok(performance.now() - again < 100, 'without waiting')
})

t.test('calls waited for together spend the time once', async (t) => {
  const budget = new RedisBudget(200)
  const results = await Promise.allSettled([budget.wait(never), budget.wait(never), budget.wait(idle(50))])
  t.same(results.map((result) => result.status), ['rejected', 'rejected', 'fulfilled'])
  t.ok(budget.remainingMs() > -150, `${budget.remainingMs()} ms: the budget once, not three times`)
})

t.test('a failure passes through as it is', async (t) => {
  const budget = new RedisBudget(200)
  await t.rejects(budget.wait(Promise.reject(new Error('READONLY'))), { message: 'READONLY' })
})

t.test('the budget of the request being served applies to what it starts, and not to what runs outside it', async (t) => {
  const budget = new RedisBudget(100)
  await runWithRedisBudget(budget, async () => {
    await t.rejects(withinRedisBudget(never), RedisBudgetSpentError, 'within the request: bounded')
    const outside = withoutRedisBudget(async () => await withinRedisBudget(idle(150).then(() => 'done')))
    t.equal(await outside, 'done', 'background work: not bounded by the spent budget')
  })
  t.equal(await withinRedisBudget(Promise.resolve('no request')), 'no request')
})
