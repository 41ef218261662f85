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

/** The QEMU guest also needs a kernel whose modules match the one booted. */
const qemuPackages = [...basePackages, "linux-image-amd64", "udev", "kmod"];

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
