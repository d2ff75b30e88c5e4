//! Device access on cgroup v2: the spec's `linux.resources.devices` rules as an eBPF program
//! of type `BPF_PROG_TYPE_CGROUP_DEVICE`, attached to the container's cgroup (v2 has no
//! devices controller; the kernel asks the programs of a process's v2 cgroup and of its
//! ancestors before every mknod and every open of a device node).
//!
//! The program reads `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`
//! (`access_type` = access << 16 | device type) and returns 1 to allow, 0 to deny (`EPERM`).
//!
//! Semantics, those of the v1 exception lists that runc's rule order gives: the rules are
//! read in order and a later rule overrides an earlier one; for each access the request asks
//! for (mknod, read, write), the last rule that names the device and that access decides;
//! when none does, the access is denied. So the program checks each asked access in turn:
//! the rules holding that access, last first, each one a few compares, and the first match
//! allows (on to the next access) or denies.

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::{io_err, CgroupError};

/// `BPF_DEVCG_ACC_MKNOD`: creating a node.
pub const ACCESS_MKNOD: u8 = 1;
/// `BPF_DEVCG_ACC_READ`: opening for reading.
pub const ACCESS_READ: u8 = 2;
/// `BPF_DEVCG_ACC_WRITE`: opening for writing.
pub const ACCESS_WRITE: u8 = 4;
const ACCESS_ALL: u8 = ACCESS_MKNOD | ACCESS_READ | ACCESS_WRITE;

/// `BPF_DEVCG_DEV_BLOCK` and `BPF_DEVCG_DEV_CHAR`, the low half of `access_type`.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

/// Which devices a rule names by type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// Every device (`a`).
    All,
    /// Character devices (`c`, `u`).
    Char,
    /// Block devices (`b`).
    Block,
}

/// One device rule, as in the spec and in v1's `devices.allow` / `devices.deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    /// Allow (true) or deny.
    pub allow: bool,
    /// The device type.
    pub kind: DeviceKind,
    /// The major number; `None`: any.
    pub major: Option<u32>,
    /// The minor number; `None`: any.
    pub minor: Option<u32>,
    /// [`ACCESS_MKNOD`] | [`ACCESS_READ`] | [`ACCESS_WRITE`].
    pub access: u8,
}

fn invalid(what: &'static str, value: impl Into<String>) -> CgroupError {
    CgroupError::InvalidValue {
        what,
        value: value.into(),
    }
}

fn parse_access(s: &str) -> Result<u8, CgroupError> {
    s.chars().try_fold(0, |acc, c| match c {
        'm' => Ok(acc | ACCESS_MKNOD),
        'r' => Ok(acc | ACCESS_READ),
        'w' => Ok(acc | ACCESS_WRITE),
        _ => Err(invalid("device access (expected r, w, m)", s)),
    })
}

fn device_number(n: Option<i64>) -> Result<Option<u32>, CgroupError> {
    match n {
        // runc takes -1 for "any" as well as an absent number.
        None => Ok(None),
        Some(n) if n < 0 => Ok(None),
        Some(n) => u32::try_from(n)
            .map(Some)
            .map_err(|_| invalid("device number", n.to_string())),
    }
}

impl DeviceRule {
    /// The rule of a spec entry; `None` for a FIFO rule (`p`), which names no device node
    /// the kernel checks.
    pub fn from_oci(rule: &LinuxDeviceCgroup) -> Result<Option<DeviceRule>, CgroupError> {
        let kind = match rule.typ().unwrap_or_default() {
            LinuxDeviceType::A => DeviceKind::All,
            LinuxDeviceType::C | LinuxDeviceType::U => DeviceKind::Char,
            LinuxDeviceType::B => DeviceKind::Block,
            LinuxDeviceType::P => return Ok(None),
        };
        let access = match rule.access().as_deref() {
            None => ACCESS_ALL,
            Some(a) => parse_access(a)?,
        };
        let (major, minor) = match kind {
            // `a` is every device, whatever numbers come with it (v1 writes a bare `a`).
            DeviceKind::All => (None, None),
            _ => (device_number(rule.major())?, device_number(rule.minor())?),
        };
        Ok(Some(DeviceRule {
            allow: rule.allow(),
            kind,
            major,
            minor,
            access,
        }))
    }

    /// Parses an allow rule in v1's `devices.allow` syntax: `c 1:3 rwm`, `b *:* m`, `a`.
    pub fn parse_allow(text: &str) -> Result<DeviceRule, CgroupError> {
        let bad = || invalid("device rule", text);
        let mut parts = text.split_whitespace();
        let kind = match parts.next() {
            Some("a") => {
                return Ok(DeviceRule {
                    allow: true,
                    kind: DeviceKind::All,
                    major: None,
                    minor: None,
                    access: ACCESS_ALL,
                })
            }
            Some("c") => DeviceKind::Char,
            Some("b") => DeviceKind::Block,
            _ => return Err(bad()),
        };
        let (major, minor) = parts
            .next()
            .and_then(|n| n.split_once(':'))
            .ok_or_else(bad)?;
        let num = |s: &str| match s {
            "*" => Ok(None),
            s => s.parse().map(Some).map_err(|_| bad()),
        };
        let rule = DeviceRule {
            allow: true,
            kind,
            major: num(major)?,
            minor: num(minor)?,
            access: parse_access(parts.next().unwrap_or("rwm"))?,
        };
        match parts.next() {
            Some(_) => Err(bad()),
            None => Ok(rule),
        }
    }
}

/// The rules a container gets, in order: the spec's, then (when the spec has any, as on v1)
/// the devices every container may use ([`super::V1_DEFAULT_DEVICE_RULES`]: the standard
/// nodes, ptys, tun, and mknod of any node).
pub fn container_rules(spec: &[LinuxDeviceCgroup]) -> Result<Vec<DeviceRule>, CgroupError> {
    let mut rules = Vec::new();
    for r in spec {
        rules.extend(DeviceRule::from_oci(r)?);
    }
    if !spec.is_empty() {
        for r in super::V1_DEFAULT_DEVICE_RULES {
            rules.push(DeviceRule::parse_allow(r)?);
        }
    }
    Ok(rules)
}

/// One eBPF instruction, `struct bpf_insn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Opcode: class | operation | source.
    pub code: u8,
    /// Destination register.
    pub dst: u8,
    /// Source register.
    pub src: u8,
    /// Offset: of a memory access, or of a jump (in instructions, from the next one).
    pub off: i16,
    /// Immediate operand.
    pub imm: i32,
}

// Opcodes used (linux/bpf.h, linux/bpf_common.h).
/// `BPF_LDX | BPF_MEM | BPF_W`: dst = *(u32 *)(src + off).
const LDX_W: u8 = 0x61;
/// `BPF_ALU | BPF_AND | BPF_K`: dst (32-bit) &= imm.
const AND32_K: u8 = 0x54;
/// `BPF_ALU | BPF_RSH | BPF_K`: dst (32-bit) >>= imm.
const RSH32_K: u8 = 0x74;
/// `BPF_ALU64 | BPF_MOV | BPF_K`: dst = imm.
const MOV64_K: u8 = 0xb7;
/// `BPF_JMP | BPF_JA`: goto +off.
const JA: u8 = 0x05;
/// `BPF_JMP | BPF_JSET | BPF_K`: if dst & imm goto +off.
const JSET_K: u8 = 0x45;
/// `BPF_JMP32 | BPF_JNE | BPF_K`: if (u32)dst != (u32)imm goto +off.
const JNE32_K: u8 = 0x56;
/// `BPF_JMP | BPF_EXIT`: return r0.
const EXIT: u8 = 0x95;

// Registers: r1 holds the context on entry; the prologue spreads it out.
const R0: u8 = 0;
const R_CTX: u8 = 1;
const R_TYPE: u8 = 2;
const R_ACCESS: u8 = 3;
const R_MAJOR: u8 = 4;
const R_MINOR: u8 = 5;

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    /// The 8 bytes of `struct bpf_insn` in this machine's byte order (the two 4-bit
    /// register fields share a byte, dst in the low bits on a little-endian machine).
    pub fn encode(&self) -> [u8; 8] {
        let regs = if cfg!(target_endian = "little") {
            (self.src << 4) | (self.dst & 0xf)
        } else {
            (self.dst << 4) | (self.src & 0xf)
        };
        let off = self.off.to_ne_bytes();
        let imm = self.imm.to_ne_bytes();
        [
            self.code, regs, off[0], off[1], imm[0], imm[1], imm[2], imm[3],
        ]
    }
}

fn jump(len: usize) -> Result<i16, CgroupError> {
    i16::try_from(len).map_err(|_| invalid("device rules (program too long)", len.to_string()))
}

/// The program of a rule list (see the module docs for its semantics).
///
/// Its shape: a prologue that loads type, access, major and minor into r2..r5; then per
/// access (mknod, read, write) a block skipped unless the request asks for it, holding the
/// rules with that access, last first (`if r2 != type goto next; if r4 != major goto next;
/// ...; allow: goto end of block | deny: return 0`) and a final `return 0`; then `return 1`.
/// A rule that names every device ends its block (the rules before it cannot decide), so
/// no instruction is unreachable, which the verifier would refuse.
pub fn program(rules: &[DeviceRule]) -> Result<Vec<Insn>, CgroupError> {
    let mut prog = vec![
        Insn::new(LDX_W, R_TYPE, R_CTX, 0, 0),
        Insn::new(AND32_K, R_TYPE, 0, 0, 0xffff),
        Insn::new(LDX_W, R_ACCESS, R_CTX, 0, 0),
        Insn::new(RSH32_K, R_ACCESS, 0, 0, 16),
        Insn::new(LDX_W, R_MAJOR, R_CTX, 4, 0),
        Insn::new(LDX_W, R_MINOR, R_CTX, 8, 0),
    ];
    for access in [ACCESS_MKNOD, ACCESS_READ, ACCESS_WRITE] {
        let block = access_block(rules, access)?;
        if block.is_empty() {
            continue;
        }
        // if (access & this) skip the jump over the block.
        prog.push(Insn::new(JSET_K, R_ACCESS, 0, 1, i32::from(access)));
        prog.push(Insn::new(JA, 0, 0, jump(block.len())?, 0));
        prog.extend(block);
    }
    prog.push(Insn::new(MOV64_K, R0, 0, 0, 1));
    prog.push(Insn::new(EXIT, 0, 0, 0, 0));
    Ok(prog)
}

/// The block deciding one access. Allow jumps are emitted with their offset to the end of
/// the block still unknown (`None`) and patched at the end.
fn access_block(rules: &[DeviceRule], access: u8) -> Result<Vec<Insn>, CgroupError> {
    let mut block: Vec<Insn> = Vec::new();
    let mut allow_jumps = Vec::new();
    let mut decided = false;
    for rule in rules.iter().rev().filter(|r| r.access & access != 0) {
        let mut conds = Vec::new();
        match rule.kind {
            DeviceKind::All => {}
            DeviceKind::Char => conds.push((R_TYPE, DEV_CHAR)),
            DeviceKind::Block => conds.push((R_TYPE, DEV_BLOCK)),
        }
        if rule.kind != DeviceKind::All {
            // Bit patterns: a major or minor above i32::MAX compares as the same 32 bits.
            conds.extend(rule.major.map(|m| (R_MAJOR, m as i32)));
            conds.extend(rule.minor.map(|m| (R_MINOR, m as i32)));
        }
        let verdict = if rule.allow { 1 } else { 2 };
        for (i, (reg, value)) in conds.iter().enumerate() {
            // Over the remaining compares and the verdict, to the next rule.
            let skip = conds.len() - i - 1 + verdict;
            block.push(Insn::new(JNE32_K, *reg, 0, jump(skip)?, *value));
        }
        if rule.allow {
            allow_jumps.push(block.len());
            block.push(Insn::new(JA, 0, 0, 0, 0));
        } else {
            block.push(Insn::new(MOV64_K, R0, 0, 0, 0));
            block.push(Insn::new(EXIT, 0, 0, 0, 0));
        }
        if conds.is_empty() {
            decided = true;
            break;
        }
    }
    // An unconditional allow at the end falls through to the end of the block (when it is
    // the only rule, the block is empty: nothing to check for this access).
    if decided && allow_jumps.last() == Some(&(block.len() - 1)) {
        block.pop();
        allow_jumps.pop();
    } else if !decided {
        // No rule named the device for this access: denied.
        block.push(Insn::new(MOV64_K, R0, 0, 0, 0));
        block.push(Insn::new(EXIT, 0, 0, 0, 0));
    }
    let end = block.len();
    for at in allow_jumps {
        block[at].off = jump(end - at - 1)?;
    }
    Ok(block)
}

/// A device program built and checked, to be loaded and attached to a v2 directory
/// ([`PendingDevices::attach`]); the runtime does that while the init sets up its mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDevices {
    /// The cgroup v2 directory.
    pub dir: PathBuf,
    insns: Vec<[u8; 8]>,
}

/// The program of `rules` for `dir`; `None` when the rules allow every access to every
/// device (`--privileged`: loading a program costs ~0.4 ms whatever it holds).
pub fn pending(dir: &Path, rules: &[DeviceRule]) -> Result<Option<PendingDevices>, CgroupError> {
    let checks = [ACCESS_MKNOD, ACCESS_READ, ACCESS_WRITE].map(|a| access_block(rules, a));
    if checks.iter().all(|b| b.as_ref().is_ok_and(Vec::is_empty)) {
        return Ok(None);
    }
    Ok(Some(PendingDevices {
        dir: dir.to_path_buf(),
        insns: program(rules)?.iter().map(Insn::encode).collect(),
    }))
}

/// [`pending`] for the spec's rules ([`container_rules`]); `None` as well when the spec has
/// none (every device allowed, as v1 leaves it).
pub fn pending_for_spec(
    dir: &Path,
    spec: Option<&[LinuxDeviceCgroup]>,
) -> Result<Option<PendingDevices>, CgroupError> {
    match spec {
        Some(spec) if !spec.is_empty() => pending(dir, &container_rules(spec)?),
        _ => Ok(None),
    }
}

impl PendingDevices {
    /// Loads the program and attaches it to the directory (`BPF_F_ALLOW_MULTI`: the
    /// programs of its ancestors still run, and all must allow). It stays attached while
    /// the directory exists; processes in it are checked from then on.
    pub fn attach(&self) -> Result<(), CgroupError> {
        use crate::sys::bpf;
        let dir = self.dir.as_path();
        let load = |log| {
            bpf::prog_load(
                bpf::PROG_TYPE_CGROUP_DEVICE,
                &self.insns,
                "berth_devices",
                log,
            )
        };
        let prog = match load(None) {
            Ok(p) => p,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EACCES)) => {
                // Refused by the verifier: load again for its report, and say why.
                let mut log = vec![0u8; 1 << 16];
                let again = load(Some(&mut log));
                let text = String::from_utf8_lossy(&log);
                let text = text.trim_end_matches('\0').trim();
                log::debug!("device program refused: {text}");
                let why = text.lines().last().unwrap_or_default();
                let e = match again {
                    Ok(_) => e,
                    Err(e2) => std::io::Error::new(e2.kind(), format!("{e2}: verifier: {why}")),
                };
                return Err(io_err("load the device program for", dir)(e));
            }
            Err(e) => return Err(io_err("load the device program for", dir)(e)),
        };
        let cgroup = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(dir)
            .map_err(io_err("open", dir))?;
        bpf::prog_attach(
            cgroup.as_fd(),
            prog.as_fd(),
            bpf::ATTACH_CGROUP_DEVICE,
            bpf::F_ALLOW_MULTI,
        )
        .map_err(io_err("attach the device program to", dir))
    }
}

/// Loads the program of `rules` and attaches it to the cgroup v2 directory `dir` at once
/// (see [`PendingDevices::attach`]); nothing when the rules allow everything.
pub fn attach(dir: &Path, rules: &[DeviceRule]) -> Result<(), CgroupError> {
    match pending(dir, rules)? {
        Some(p) => p.attach(),
        None => Ok(()),
    }
}

/// The environment variable that, set to `bpf` on a hybrid (v1) host, makes the runtime
/// enforce the device rules as on a v2 host: a device program on the container's directory
/// of the unified hierarchy instead of the v1 devices controller. It exercises the v2 path
/// where only a hybrid host is at hand.
pub const HYBRID_BPF_ENV: &str = "BERTH_CGROUP_DEVICES";

/// On a hybrid host with [`HYBRID_BPF_ENV`]`=bpf`: the cgroup's unified-hierarchy directory,
/// which then takes the rules instead of the v1 devices controller.
pub(super) fn hybrid_opt_in(cgroup: &super::Cgroup) -> Option<PathBuf> {
    if std::env::var_os(HYBRID_BPF_ENV).is_none_or(|v| v != "bpf") {
        return None;
    }
    cgroup.self_join().v2_dir
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Runs a program on one request: the verdict (true: allowed). Only the opcodes the
    /// emitter uses are known.
    fn run(prog: &[Insn], kind: i32, access: u8, major: u32, minor: u32) -> bool {
        let ctx = [(u32::from(access) << 16) | kind as u32, major, minor];
        let mut reg = [0u64; 11];
        let mut pc = 0usize;
        for _ in 0..10_000 {
            let i = prog[pc];
            let (d, imm) = (usize::from(i.dst), i.imm);
            pc += 1;
            let jump = |pc: &mut usize, cond: bool| {
                if cond {
                    *pc = (*pc as isize + isize::from(i.off)) as usize;
                }
            };
            match i.code {
                LDX_W => reg[d] = u64::from(ctx[i.off as usize / 4]),
                AND32_K => reg[d] = (reg[d] as u32 & imm as u32) as u64,
                RSH32_K => reg[d] = ((reg[d] as u32) >> imm) as u64,
                MOV64_K => reg[d] = imm as i64 as u64,
                JA => jump(&mut pc, true),
                JSET_K => jump(&mut pc, reg[d] & (imm as i64 as u64) != 0),
                JNE32_K => jump(&mut pc, reg[d] as u32 != imm as u32),
                EXIT => return reg[0] == 1,
                c => panic!("unknown opcode {c:#x}"),
            }
        }
        panic!("no exit");
    }

    /// Every instruction reachable and every jump inside the program (the verifier refuses
    /// anything else); the last one an exit.
    fn assert_verifiable(prog: &[Insn]) {
        let mut seen = vec![false; prog.len()];
        let mut todo = vec![0usize];
        while let Some(pc) = todo.pop() {
            assert!(pc < prog.len(), "jump out of the program: {prog:?}");
            if std::mem::replace(&mut seen[pc], true) {
                continue;
            }
            let i = prog[pc];
            let target = (pc as isize + 1 + isize::from(i.off)) as usize;
            match i.code {
                EXIT => {}
                JA => todo.push(target),
                JSET_K | JNE32_K => todo.extend([pc + 1, target]),
                _ => todo.push(pc + 1),
            }
        }
        assert!(
            seen.iter().all(|s| *s),
            "unreachable instructions: {prog:?}"
        );
        assert_eq!(prog.last().unwrap().code, EXIT);
    }

    fn spec_rules(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).unwrap()
    }

    const C: i32 = DEV_CHAR;
    const B: i32 = DEV_BLOCK;
    const M: u8 = ACCESS_MKNOD;
    const R: u8 = ACCESS_READ;
    const W: u8 = ACCESS_WRITE;

    #[test]
    fn deny_all_then_null_is_this_program() {
        let rules = container_rules(&[]).unwrap();
        assert!(rules.is_empty(), "no spec rules: nothing added");
        let rules: Vec<DeviceRule> = spec_rules(
            r#"[{"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}]"#,
        )
        .iter()
        .map(|r| DeviceRule::from_oci(r).unwrap().unwrap())
        .collect();
        let prog = program(&rules).unwrap();
        let i = Insn::new;
        let deny = [i(MOV64_K, 0, 0, 0, 0), i(EXIT, 0, 0, 0, 0)];
        let mut want = vec![
            i(LDX_W, 2, 1, 0, 0),
            i(AND32_K, 2, 0, 0, 0xffff),
            i(LDX_W, 3, 1, 0, 0),
            i(RSH32_K, 3, 0, 0, 16),
            i(LDX_W, 4, 1, 4, 0),
            i(LDX_W, 5, 1, 8, 0),
            // mknod: only the deny-all rule has it.
            i(JSET_K, 3, 0, 1, 1),
            i(JA, 0, 0, 2, 0),
        ];
        want.extend(deny);
        for access in [R, W] {
            want.extend([
                i(JSET_K, 3, 0, 1, i32::from(access)),
                i(JA, 0, 0, 6, 0),
                i(JNE32_K, 2, 0, 3, C),
                i(JNE32_K, 4, 0, 2, 1),
                i(JNE32_K, 5, 0, 1, 3),
                i(JA, 0, 0, 2, 0),
            ]);
            want.extend(deny);
        }
        want.extend([i(MOV64_K, 0, 0, 0, 1), i(EXIT, 0, 0, 0, 0)]);
        assert_eq!(prog, want);
        assert_verifiable(&prog);
        assert_eq!(
            Insn::new(JNE32_K, 4, 0, 2, 136).encode(),
            if cfg!(target_endian = "little") {
                [0x56, 0x04, 2, 0, 136, 0, 0, 0]
            } else {
                [0x56, 0x40, 0, 2, 0, 0, 0, 136]
            }
        );
    }

    #[test]
    fn dockers_rules_allow_the_standard_nodes_and_mknod_only() {
        let rules = container_rules(&spec_rules(r#"[{"allow": false, "access": "rwm"}]"#)).unwrap();
        assert_eq!(rules.len(), 1 + super::super::V1_DEFAULT_DEVICE_RULES.len());
        let prog = program(&rules).unwrap();
        assert_verifiable(&prog);
        for (kind, major, minor) in [
            (C, 1, 3),
            (C, 1, 5),
            (C, 1, 7),
            (C, 1, 8),
            (C, 1, 9),
            (C, 5, 0),
            (C, 5, 1),
            (C, 5, 2),
            (C, 136, 0),
            (C, 136, 4095),
            (C, 10, 200),
        ] {
            assert!(
                run(&prog, kind, R | W, major, minor),
                "{kind} {major}:{minor}"
            );
            assert!(run(&prog, kind, M, major, minor));
        }
        for (kind, major, minor) in [
            (B, 8, 0),
            (B, 254, 0),
            (C, 1, 1),
            (C, 1, 2),
            (C, 10, 229),
            (B, 1, 3),
        ] {
            assert!(
                !run(&prog, kind, R, major, minor),
                "{kind} {major}:{minor} read"
            );
            assert!(
                !run(&prog, kind, W, major, minor),
                "{kind} {major}:{minor} write"
            );
            assert!(!run(&prog, kind, R | W, major, minor));
            // Making the node is allowed (b *:* m, c *:* m), as Docker.
            assert!(run(&prog, kind, M, major, minor));
        }
        // An open that asks for an allowed and a denied access is denied.
        assert!(!run(&prog, B, M | R, 8, 0));
    }

    #[test]
    fn the_last_rule_naming_an_access_decides_it() {
        let rules: Vec<DeviceRule> = spec_rules(
            r#"[{"allow": true, "access": "rwm"},
                {"allow": false, "type": "c", "major": 1, "minor": 5, "access": "w"},
                {"allow": false, "type": "a", "access": "m"},
                {"allow": true, "type": "b", "major": 7, "access": "m"},
                {"allow": false, "type": "p", "access": "rwm"}]"#,
        )
        .iter()
        .filter_map(|r| DeviceRule::from_oci(r).unwrap())
        .collect();
        assert_eq!(rules.len(), 4, "the FIFO rule names no device");
        let prog = program(&rules).unwrap();
        assert_verifiable(&prog);
        assert!(run(&prog, C, R, 1, 5));
        assert!(!run(&prog, C, W, 1, 5));
        assert!(!run(&prog, C, R | W, 1, 5));
        assert!(run(&prog, C, R | W, 1, 3));
        assert!(!run(&prog, C, M, 1, 3));
        assert!(run(&prog, B, M, 7, 12));
        assert!(!run(&prog, B, M, 8, 0));
        assert!(run(&prog, B, R | W, 8, 0));
        // Allow-all alone: nothing to check, every request allowed.
        let all = [DeviceRule::parse_allow("a").unwrap()];
        assert_eq!(program(&all).unwrap().len(), 8);
        assert!(run(&program(&all).unwrap(), B, M | R | W, 8, 0));
        // No rules: nothing allowed.
        assert!(!run(&program(&[]).unwrap(), C, R, 1, 3));
    }

    #[test]
    fn every_rule_order_gives_a_verifiable_program() {
        let pool: Vec<DeviceRule> = [
            r#"{"allow": false, "access": "rwm"}"#,
            r#"{"allow": true, "access": "r"}"#,
            r#"{"allow": true, "type": "c", "access": "m"}"#,
            r#"{"allow": false, "type": "b", "major": 8, "access": "rw"}"#,
            r#"{"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}"#,
            r#"{"allow": false, "type": "c", "minor": 3, "access": "w"}"#,
        ]
        .iter()
        .map(|j| {
            DeviceRule::from_oci(&serde_json::from_str(j).unwrap())
                .unwrap()
                .unwrap()
        })
        .collect();
        // Every subset in every rotation: programs with allow/deny, wildcard first and last.
        for mask in 0u32..(1 << pool.len()) {
            let subset: Vec<DeviceRule> = (0..pool.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| pool[i])
                .collect();
            for rot in 0..subset.len().max(1) {
                let mut rules = subset.clone();
                rules.rotate_left(rot);
                let prog = program(&rules).unwrap();
                assert_verifiable(&prog);
                // The program agrees with the rules read directly.
                for (kind, major, minor) in [(C, 1, 3), (B, 8, 3), (C, 8, 0), (B, 7, 7)] {
                    for access in [M, R, W, R | W, M | R | W] {
                        let want = [M, R, W].iter().filter(|a| access & **a != 0).all(|a| {
                            rules
                                .iter()
                                .rev()
                                .find(|r| {
                                    r.access & a != 0
                                        && match r.kind {
                                            DeviceKind::All => true,
                                            DeviceKind::Char => kind == C,
                                            DeviceKind::Block => kind == B,
                                        }
                                        && r.major.is_none_or(|m| m == major)
                                        && r.minor.is_none_or(|m| m == minor)
                                })
                                .is_some_and(|r| r.allow)
                        });
                        assert_eq!(run(&prog, kind, access, major, minor), want, "{rules:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn bad_rules_are_refused_with_the_value() {
        let bad = |j: &str| {
            DeviceRule::from_oci(&serde_json::from_str(j).unwrap())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            bad(r#"{"allow": true, "type": "c", "major": 1, "access": "rwx"}"#),
            "cgroup: invalid device access (expected r, w, m): rwx"
        );
        assert_eq!(
            bad(r#"{"allow": true, "type": "b", "major": 4294967296, "access": "r"}"#),
            "cgroup: invalid device number: 4294967296"
        );
        // -1 is "any", as runc reads it.
        let r = DeviceRule::from_oci(
            &serde_json::from_str(r#"{"allow": true, "type": "c", "major": -1, "minor": 3}"#)
                .unwrap(),
        )
        .unwrap()
        .unwrap();
        assert_eq!((r.major, r.minor, r.access), (None, Some(3), M | R | W));
        assert!(DeviceRule::parse_allow("c 1:3 rwm x").is_err());
        assert!(DeviceRule::parse_allow("x 1:3").is_err());
        assert_eq!(
            DeviceRule::parse_allow("b *:* m").unwrap(),
            DeviceRule {
                allow: true,
                kind: DeviceKind::Block,
                major: None,
                minor: None,
                access: M
            }
        );
    }
}
