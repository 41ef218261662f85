// QEMU backend (placeholder while it is being written).
import type { Backend } from "./machine.js";

export interface QemuOptions {
  name: string;
  fixture: string;
  stateDir: string;
}

export class QemuBackend {
  static async create(_opts: QemuOptions): Promise<Backend> {
    throw new Error("the QEMU backend is not implemented yet");
  }
}
