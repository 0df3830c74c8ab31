/**
 * Gas of the Digicap hot paths on a real anvil, as a markdown table. Run: `pnpm bench`.
 * Baseline: a plain ETH transfer (21,000 gas) measured in the same run.
 */
import {
  hexlify,
  parseEther,
  randomBytes,
  type TransactionResponse,
  Wallet,
  ZeroAddress,
} from 'ethers'
import { startAnvil } from '../src/anvil.ts'
import { deployPolicy } from '../src/compiler/policy.ts'
import { connectDigicap, deployDigicap } from '../src/deploy.ts'
import { ACCESS_REQUEST_TYPES, accessRequestDomain, jobParamsHash } from '../src/fastpath.ts'
import {
  all,
  before,
  environment,
  fee,
  maxRuns,
  minReputation,
  type PolicyExpression,
} from '../src/policy/expression.ts'

const TARGET_REQUEST_3 = 120_000n
const anvil = await startAnvil()
try {
  const [deployer, owner, executor] = anvil.signers as [
    (typeof anvil.signers)[0],
    (typeof anvil.signers)[0],
    (typeof anvil.signers)[0],
  ]
  const addresses = await deployDigicap(deployer)
  const c = connectDigicap(addresses, deployer)
  const rows: [string, bigint][] = []
  const gas = async (label: string, tx: Promise<TransactionResponse>): Promise<void> => {
    const receipt = await (await tx).wait()
    rows.push([label, receipt!.gasUsed])
  }
  const bytes32 = (): string => hexlify(randomBytes(32))

  await gas('ETH transfer (baseline)', owner.sendTransaction({ to: executor.address, value: 1n }))
  await gas(
    'registerNode (executor, 46-byte peer id)',
    c.nodeRegistry
      .connect(executor)
      .register(hexlify(randomBytes(46)), bytes32(), 1, { value: parseEther('1') }),
  )
  const measurement = bytes32()
  const rules: [string, PolicyExpression][] = [
    ['1 condition: maxRuns', maxRuns(1000)],
    [
      '3 conditions: minReputation, environment, maxRuns',
      all(minReputation(1), environment(measurement), maxRuns(1000)),
    ],
    [
      '5 conditions: + before, fee (0.001 ETH into escrow)',
      all(
        minReputation(1),
        environment(measurement),
        before('2100-01-01T00:00:00Z'),
        maxRuns(1000),
        fee('0.001'),
      ),
    ],
  ]
  let request3 = 0n
  for (const [i, [label, rule]] of rules.entries()) {
    const policy = await deployPolicy(owner, rule, { nodeRegistry: addresses.nodeRegistry })
    const capsuleId = bytes32()
    const cid = 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi'
    if (i === 0)
      await gas(
        'register capsule (59-char CID, 38-byte keyguard peer id)',
        c.capsuleRegistry
          .connect(owner)
          .register(capsuleId, policy.address, cid, bytes32(), hexlify(randomBytes(38)), bytes32()),
      )
    else
      await (
        await c.capsuleRegistry
          .connect(owner)
          .register(capsuleId, policy.address, cid, bytes32(), hexlify(randomBytes(38)), bytes32())
      ).wait()
    const value =
      rule.kind === 'all' && rule.conditions.some((x) => x.kind === 'fee')
        ? parseEther('0.001')
        : 0n
    const ac = c.accessController.connect(executor)
    await gas(
      `requestAccess, ${label}, first run`,
      ac.requestAccess(capsuleId, bytes32(), measurement, '0x', { value }),
    )
    await gas(
      `requestAccess, ${label}, later run`,
      ac.requestAccess(capsuleId, bytes32(), measurement, '0x', { value }),
    )
    if (i === 1) request3 = rows.at(-1)![1]
    if (i === 1) {
      const domain = accessRequestDomain(anvil.chainId, addresses.accessController)
      const req = {
        capsuleId,
        executor: executor.address,
        ephemeralKey: bytes32(),
        measurement,
        jobParamsHash: jobParamsHash('0x'),
        fee: 0n,
        nonce: 1n,
        expiry: BigInt(Math.floor(Date.now() / 1000) + 3600),
      }
      const signature = await executor.signTypedData(domain, ACCESS_REQUEST_TYPES, req)
      await gas(
        'recordFastPathGrant, 3 conditions (owner as keyguard)',
        c.accessController.connect(owner).recordFastPathGrant(req, '0x', signature),
      )
    }
  }
  {
    // ADR 0073: an audit whose run a chain grant took first (maxRuns(1)) is recorded as an
    // overrun: the grant, the run, FastPathOverrun and overrunRunCount.
    const policy = await deployPolicy(owner, maxRuns(1), { nodeRegistry: addresses.nodeRegistry })
    const capsuleId = bytes32()
    await (
      await c.capsuleRegistry
        .connect(owner)
        .register(capsuleId, policy.address, 'bafy', bytes32(), hexlify(randomBytes(38)), bytes32())
    ).wait()
    await (
      await c.accessController
        .connect(executor)
        .requestAccess(capsuleId, bytes32(), measurement, '0x')
    ).wait()
    const domain = accessRequestDomain(anvil.chainId, addresses.accessController)
    const req = {
      capsuleId,
      executor: executor.address,
      ephemeralKey: bytes32(),
      measurement,
      jobParamsHash: jobParamsHash('0x'),
      fee: 0n,
      nonce: 1n,
      expiry: BigInt(Math.floor(Date.now() / 1000) + 3600),
    }
    const signature = await executor.signTypedData(domain, ACCESS_REQUEST_TYPES, req)
    await gas(
      'recordFastPathGrant, overrun (maxRuns(1) taken by a chain grant first)',
      c.accessController.connect(owner).recordFastPathGrant(req, '0x', signature),
    )
  }
  {
    // Settling an audit's fee (ADR 0006, amendments): a settler and a manager named through the
    // admin timelock (as a later hub would be) split one escrow paid from the deposit and one
    // drawn from stake, then slash the executor past its stake and unbonding funds.
    const [agent, drawer] = [anvil.signers[3]!, anvil.signers[4]!]
    const setSettler = c.accessController.interface.encodeFunctionData('setSettler', [
      agent.address,
      true,
    ])
    const setManager = c.nodeRegistry.interface.encodeFunctionData('setManager', [
      agent.address,
      true,
    ])
    await (await c.accessController.queueAdminCall(setSettler)).wait()
    await (await c.nodeRegistry.queueAdminCall(setManager)).wait()
    await anvil.increaseTime(Number(await c.accessController.adminDelay()) + 1)
    await (
      await deployer.sendTransaction({ to: addresses.accessController, data: setSettler })
    ).wait()
    await (await deployer.sendTransaction({ to: addresses.nodeRegistry, data: setManager })).wait()
    const stake = await c.nodeRegistry.minStake()
    await (
      await c.nodeRegistry
        .connect(drawer)
        .register(hexlify(randomBytes(46)), bytes32(), 1, { value: stake })
    ).wait()
    const policy = await deployPolicy(owner, maxRuns(1000), {
      nodeRegistry: addresses.nodeRegistry,
    })
    const capsuleId = bytes32()
    await (
      await c.capsuleRegistry
        .connect(owner)
        .register(capsuleId, policy.address, 'bafy', bytes32(), hexlify(randomBytes(38)), bytes32())
    ).wait()
    const domain = accessRequestDomain(anvil.chainId, addresses.accessController)
    const audit = async (label: string, fee: bigint, nonce: bigint): Promise<string> => {
      const latest = await anvil.provider.getBlock('latest')
      const req = {
        capsuleId,
        executor: drawer.address,
        ephemeralKey: bytes32(),
        measurement,
        jobParamsHash: jobParamsHash('0x'),
        fee,
        nonce,
        expiry: BigInt(latest!.timestamp + 600),
      }
      const signature = await drawer.signTypedData(domain, ACCESS_REQUEST_TYPES, req)
      const ac = c.accessController.connect(owner)
      const id = await ac.recordFastPathGrant.staticCall(req, '0x', signature)
      await gas(label, ac.recordFastPathGrant(req, '0x', signature))
      return id
    }
    const fee = parseEther('0.001')
    await (await c.accessController.connect(drawer).deposit({ value: fee })).wait()
    const fromDeposit = await audit('recordFastPathGrant, 0.001 ETH fee from the deposit', fee, 1n)
    const fromStake = await audit(
      'recordFastPathGrant, fee drawn from stake (deposit empty)',
      stake,
      2n,
    )
    const settler = c.accessController.connect(agent)
    const payees = [owner.address, drawer.address]
    for (const id of [fromDeposit, fromStake]) await (await settler.disputeEscrow(id)).wait()
    await gas(
      'resolveEscrow, owner + executor, fee from the deposit',
      settler.resolveEscrow(fromDeposit, payees, [fee / 2n, fee / 2n]),
    )
    await gas(
      'resolveEscrow, owner + executor, fee drawn from stake',
      settler.resolveEscrow(fromStake, payees, [stake / 2n, stake / 2n]),
    )
    // ADR 0092's recordFault takes the recipient's share (basis points) before the job id; the
    // contracts before it (a before/after run) credit the whole slash to the recipient.
    const burns = c.nodeRegistry.interface.getFunction('recordFault')!.inputs.length === 6
    const fault = (node: string, amount: bigint, recipient: string, bps: number) =>
      (
        c.nodeRegistry.connect(agent) as unknown as {
          recordFault(...args: unknown[]): Promise<TransactionResponse>
        }
      ).recordFault(
        ...(burns
          ? [node, false, amount, recipient, bps, bytes32()]
          : [node, false, amount, recipient, bytes32()]),
      )
    // The burn address holds ETH on a live chain (on mainnet for years): funded here too, so
    // that the rows show the steady cost, not the one-off creation of its account (25k).
    await (
      await deployer.sendTransaction({
        to: '0x000000000000000000000000000000000000dEaD',
        value: 1n,
      })
    ).wait()
    const faulty = Wallet.createRandom(anvil.provider)
    await (await deployer.sendTransaction({ to: faulty.address, value: parseEther('1') })).wait()
    await (
      await c.nodeRegistry
        .connect(faulty)
        .register(hexlify(randomBytes(46)), bytes32(), 2, { value: stake })
    ).wait()
    await gas(
      'recordFault from stake, 10 % to the recipient and the rest burned (before: all to it)',
      fault(faulty.address, stake / 2n, agent.address, 1000),
    )
    await gas(
      'recordFault from stake, all burned (a fail slash; before: all to the owner)',
      fault(faulty.address, stake / 4n, burns ? ZeroAddress : agent.address, 0),
    )
    // Contracts before time-locked credits (a before/after run) stop here.
    if (c.accessController.interface.getFunction('withdrawLockedCredits') !== null) {
      await gas(
        'recordFault past stake and unbonding (seizes a locked credit; burned since ADR 0092)',
        fault(drawer.address, (stake * 3n) / 4n, burns ? ZeroAddress : agent.address, 0),
      )
      await anvil.increaseTime(Number(await c.accessController.stakeClaimDelay()))
      await gas(
        'withdrawLockedCredits, 1 grant',
        c.accessController.connect(owner).withdrawLockedCredits([fromStake]),
      )
    }
  }
  const base = rows[0]![1]
  console.log('| operation | gas | × transfer |')
  console.log('| --- | ---: | ---: |')
  for (const [label, used] of rows)
    console.log(
      `| ${label} | ${used.toLocaleString('en-US')} | ${(Number(used) / Number(base)).toFixed(2)} |`,
    )
  console.log(
    `\nrequestAccess with a 3-condition policy: ${request3.toLocaleString('en-US')} gas (target ≤ ${TARGET_REQUEST_3.toLocaleString('en-US')}: ${request3 <= TARGET_REQUEST_3 ? 'met' : 'MISSED'})`,
  )
} finally {
  await anvil.stop()
}
