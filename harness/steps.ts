// Executes a scenario's steps on a Machine. vm-tests/steps.py is the same interpreter for the
// NixOS test driver; the two must agree on what each step checks.
import { Machine, MachineError, shellQuote } from "./machine.js";
import type { Step } from "./scenario.js";

export async function runSteps(machine: Machine, steps: readonly Step[]): Promise<void> {
  for (const step of steps) await runStep(machine, step);
}

function expectOutput(what: string, actual: string, step: { equals?: string; contains?: string | string[] }): void {
  if (step.equals !== undefined && actual !== step.equals) {
    throw new MachineError(`${what}: expected ${JSON.stringify(step.equals)}, got ${JSON.stringify(actual)}`);
  }
  // One string, or several that must all be there.
  for (const wanted of step.contains === undefined ? [] : [step.contains].flat()) {
    if (!actual.includes(wanted)) {
      throw new MachineError(`${what}: expected output containing ${JSON.stringify(wanted)}, got:\n${actual}`);
    }
  }
}

async function runStep(machine: Machine, step: Step): Promise<void> {
  switch (step.op) {
    case "start":
      // As steps.py: the NixOS driver would give QEMU -no-reboot otherwise.
      return machine.start({ allowReboot: true });
    case "waitForUnit":
      return machine.waitForUnit(step.unit);
    case "succeed":
      expectOutput(step.command, await machine.succeed(step.command), step);
      return;
    case "fail":
      await machine.fail(step.command);
      return;
    case "waitUntilSucceeds":
      await machine.waitUntilSucceeds(step.command);
      return;
    case "assertSecret": {
      const p = shellQuote(step.path);
      const kind = step.symlink === true ? `test -L ${p}` : step.symlink === false ? `test -f ${p} && test ! -L ${p}` : `test -e ${p}`;
      await machine.succeed(kind);
      expectOutput(`content of ${step.path}`, await machine.succeed(`cat -- ${p}`), { equals: step.content });
      const expected = `${step.mode} ${step.owner} ${step.group} ${step.uid} ${step.gid}\n`;
      expectOutput(`mode and ownership of ${step.path}`, await machine.succeed(`stat -L -c '%a %U %G %u %g' -- ${p}`), { equals: expected });
      return;
    }
    case "switch": {
      const action = step.action ?? "test";
      const r = await machine.execute(`switch-to-configuration ${shellQuote(step.to)} ${shellQuote(action)}`);
      for (const line of (r.stdout + r.stderr).split("\n").filter(Boolean)) machine.note(`switch-to-configuration: ${line}`);
      if (r.status !== 0 && !step.mayFail) {
        throw new MachineError(`switching to ${step.to} (${action}) failed (exit code ${r.status})\n${r.stdout}${r.stderr}`);
      }
      expectOutput(`switch-to-configuration ${action} of ${step.to}`, r.stdout + r.stderr, { ...(step.contains === undefined ? {} : { contains: step.contains }) });
      return;
    }
    case "homeSwitch": {
      const r = await machine.execute(`home-manager-switch ${shellQuote(step.to)}`);
      for (const line of (r.stdout + r.stderr).split("\n").filter(Boolean)) machine.note(line);
      if (r.status !== 0 && !step.mayFail) throw new MachineError(`home-manager switch to ${step.to} failed (exit code ${r.status})\n${r.stdout}${r.stderr}`);
      return;
    }
    case "reboot":
      return machine.reboot();
    case "crash":
      return machine.crash();
    case "shutdown":
      return machine.shutdown();
    case "repeat":
      for (let i = 0; i < step.times; i++) await runSteps(machine, step.steps);
      return;
    case "checkPassword": {
      // The hash in /etc/shadow must be what crypt(3) makes of the password with its own salt.
      const perl = `my @e = getpwnam(shift) or die "no such user\\n"; exit(crypt(shift, $e[1]) eq $e[1] ? 0 : 1)`;
      await machine.succeed(`perl -e ${shellQuote(perl)} ${shellQuote(step.user)} ${shellQuote(step.password)}`);
      await machine.fail(`perl -e ${shellQuote(perl)} ${shellQuote(step.user)} ${shellQuote(step.password + "-wrong")}`);
      return;
    }
  }
}
