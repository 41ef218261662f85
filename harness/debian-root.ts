// The Debian bookworm root filesystems the machines boot, built with mmdebstrap and cached
// by their inputs. They stay pristine: each machine writes into its own overlay.
import { cached } from "./cache.js";
import { runChecked } from "./process.js";

const suite = "bookworm";
const mirror = "http://deb.debian.org/debian";

/**
 * systemd as PID 1 and what the scenarios' commands use (stat, getent, perl's crypt);
 * libpam-systemd for users' managers (pam_systemd gives them XDG_RUNTIME_DIR, as on NixOS).
 */
const basePackages = ["systemd", "systemd-sysv", "dbus", "passwd", "procps", "libpam-systemd"];

/**
 * The QEMU guest also needs a kernel whose modules match the one booted; and the TPM2 libraries
 * systemd 252 dlopens for `systemd-creds --with-key=tpm2` (libtss2-esys, -rc, -mu, and the TCTI
 * for /dev/tpmrm0, libtss2-tcti-device), which no Debian systemd package depends on: without
 * them systemd-creds reports no TPM2 support. Only the QEMU machine has a TPM (swtpm, ./qemu.ts).
 */
const qemuPackages = [...basePackages, "linux-image-amd64", "udev", "kmod", "libtss2-esys-3.0.2-0", "libtss2-rc0", "libtss2-mu0", "libtss2-tcti-device0"];

export type RootFlavour = "nspawn" | "qemu";

export function debianRoot(flavour: RootFlavour): Promise<string> {
  const packages = flavour === "nspawn" ? basePackages : qemuPackages;
  const inputs = { recipe: 1, suite, mirror, packages, flavour };
  return cached(`debian-${flavour}`, inputs, async (dir) => {
    const started = Date.now();
    console.log(`harness: building the ${flavour} root image (mmdebstrap ${suite}) in ${dir}`);
    await runChecked(
      ["mmdebstrap", "--quiet", "--variant=minbase", `--include=${packages.join(",")}`, suite, dir, mirror],
      { timeoutMs: 15 * 60_000 },
    );
    console.log(`harness: ${flavour} root image built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
}
