//! Seccomp: the OCI `linux.seccomp` section compiled to a classic BPF program of our own
//! (x86_64, x32 and i386 sections), and Docker's default profile as data
//! ([`default_seccomp`]).
//!
//! The program checks the architecture first (an unlisted one kills the process), then
//! finds the syscall number with a binary search tree (leaves of a few numbers), checks
//! 64-bit arguments as two 32-bit halves, and ends each path with the rule's action or the
//! default one.

mod profile;
mod table;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

pub use profile::{default_seccomp, default_seccomp_for};

/// Errors compiling or loading a seccomp filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// An action the runtime does not implement (e.g. `SCMP_ACT_NOTIFY`).
    #[error("seccomp: action {0:?} is not supported")]
    UnsupportedAction(LinuxSeccompAction),
    /// A rule compares an argument index beyond the six a syscall has.
    #[error("seccomp: syscall {name}: argument index {index} out of range")]
    BadArgIndex {
        /// The syscall.
        name: String,
        /// The index given.
        index: usize,
    },
    /// The program would exceed the kernel's 4096 instructions.
    #[error("seccomp: filter too long ({0} instructions)")]
    TooLong(usize),
    /// No architecture of the profile can run here.
    #[error("seccomp: none of the profile's architectures is x86 (x86_64, x32, i386)")]
    NoArch,
}

impl SeccompError {
    /// The kind of failure.
    pub fn kind(&self) -> crate::ErrorKind {
        crate::ErrorKind::InvalidArgument
    }
}

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const RET_KILL_THREAD: u32 = 0x0000_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JGE_K: u16 = 0x35;
const JA: u16 = 0x05;
const RET_K: u16 = 0x06;
const AND_K: u16 = 0x54;

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

/// A compiled filter: the program and the `seccomp(2)` flags to load it with.
#[derive(Debug, Clone)]
pub struct SeccompProgram {
    /// The BPF instructions.
    pub instructions: Vec<libc::sock_filter>,
    /// `SECCOMP_FILTER_FLAG_*` bits.
    pub flags: u32,
}

impl SeccompProgram {
    /// Loads the program into the calling thread (needs no_new_privs or CAP_SYS_ADMIN).
    pub fn load(&self) -> std::io::Result<()> {
        crate::sys::seccomp_set_filter(&self.instructions, self.flags)
    }
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

fn action_code(action: LinuxSeccompAction, errno: Option<u32>) -> Result<u32, SeccompError> {
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => RET_KILL_THREAD,
        LinuxSeccompAction::ScmpActKillProcess => RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => RET_TRAP,
        LinuxSeccompAction::ScmpActErrno => {
            RET_ERRNO | (errno.unwrap_or(libc::EPERM as u32) & 0xffff)
        }
        LinuxSeccompAction::ScmpActTrace => RET_TRACE | (errno.unwrap_or(0) & 0xffff),
        LinuxSeccompAction::ScmpActLog => RET_LOG,
        LinuxSeccompAction::ScmpActAllow => RET_ALLOW,
        other @ LinuxSeccompAction::ScmpActNotify => {
            return Err(SeccompError::UnsupportedAction(other))
        }
    })
}

/// A jump target inside one rule block.
#[derive(Clone, Copy)]
enum Target {
    Next,
    Fail,
    Skip(u8),
}

struct Block {
    insns: Vec<(libc::sock_filter, Target, Target)>,
}

impl Block {
    fn push(&mut self, i: libc::sock_filter) {
        self.insns.push((i, Target::Next, Target::Next));
    }
    fn cond(&mut self, code: u16, k: u32, jt: Target, jf: Target) {
        self.insns.push((jump(code, k, 0, 0), jt, jf));
    }
    /// Resolves `Fail` to the first instruction after the block.
    fn finish(self) -> Result<Vec<libc::sock_filter>, SeccompError> {
        let len = self.insns.len();
        let off = |i: usize, t: Target| -> Result<u8, SeccompError> {
            match t {
                Target::Next => Ok(0),
                Target::Skip(n) => Ok(n),
                Target::Fail => u8::try_from(len - i - 1).map_err(|_| SeccompError::TooLong(len)),
            }
        };
        self.insns
            .iter()
            .enumerate()
            .map(|(i, (ins, jt, jf))| {
                let mut ins = *ins;
                if ins.code & 0x07 == 0x05 && ins.code != JA {
                    ins.jt = off(i, *jt)?;
                    ins.jf = off(i, *jf)?;
                }
                Ok(ins)
            })
            .collect()
    }
}

/// One rule for one architecture: syscall number, argument checks, action.
struct Rule<'a> {
    nr: u32,
    name: &'a str,
    args: &'a [oci_spec::runtime::LinuxSeccompArg],
    action: u32,
}

fn rule_block(rule: &Rule<'_>) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let mut b = Block { insns: Vec::new() };
    b.cond(JEQ_K, rule.nr, Target::Next, Target::Fail);
    for arg in rule.args {
        if arg.index() > 5 {
            return Err(SeccompError::BadArgIndex {
                name: rule.name.to_string(),
                index: arg.index(),
            });
        }
        let lo_off = OFF_ARGS + 8 * arg.index() as u32;
        let hi_off = lo_off + 4;
        let v = arg.value();
        let (vhi, vlo) = ((v >> 32) as u32, v as u32);
        match arg.op() {
            LinuxSeccompOperator::ScmpCmpEq => {
                b.push(stmt(LD_W_ABS, hi_off));
                b.cond(JEQ_K, vhi, Target::Next, Target::Fail);
                b.push(stmt(LD_W_ABS, lo_off));
                b.cond(JEQ_K, vlo, Target::Next, Target::Fail);
            }
            LinuxSeccompOperator::ScmpCmpNe => {
                // Pass when either half differs.
                b.push(stmt(LD_W_ABS, hi_off));
                b.cond(JEQ_K, vhi, Target::Next, Target::Skip(2));
                b.push(stmt(LD_W_ABS, lo_off));
                b.cond(JEQ_K, vlo, Target::Fail, Target::Next);
            }
            LinuxSeccompOperator::ScmpCmpMaskedEq => {
                let want = arg.value_two().unwrap_or(0);
                let (mhi, mlo) = ((v >> 32) as u32, v as u32);
                b.push(stmt(LD_W_ABS, hi_off));
                b.push(stmt(AND_K, mhi));
                b.cond(JEQ_K, (want >> 32) as u32, Target::Next, Target::Fail);
                b.push(stmt(LD_W_ABS, lo_off));
                b.push(stmt(AND_K, mlo));
                b.cond(JEQ_K, want as u32, Target::Next, Target::Fail);
            }
            op => {
                // Unsigned comparisons: decide on the high half unless equal, then the low half.
                let (hi_pass, lo_code, lo_pass_on_true) = match op {
                    LinuxSeccompOperator::ScmpCmpGt => (true, JGT_K, true),
                    LinuxSeccompOperator::ScmpCmpGe => (true, JGE_K, true),
                    LinuxSeccompOperator::ScmpCmpLt => (false, JGE_K, false),
                    _ => (false, JGT_K, false), // Le
                };
                b.push(stmt(LD_W_ABS, hi_off));
                // hi > vhi: pass for GT/GE, fail for LT/LE.
                if hi_pass {
                    b.cond(JGT_K, vhi, Target::Skip(3), Target::Next);
                } else {
                    b.cond(JGT_K, vhi, Target::Fail, Target::Next);
                }
                // hi < vhi: fail for GT/GE, pass for LT/LE.
                if hi_pass {
                    b.cond(JEQ_K, vhi, Target::Next, Target::Fail);
                } else {
                    b.cond(JEQ_K, vhi, Target::Next, Target::Skip(2));
                }
                b.push(stmt(LD_W_ABS, lo_off));
                if lo_pass_on_true {
                    b.cond(lo_code, vlo, Target::Next, Target::Fail);
                } else {
                    b.cond(lo_code, vlo, Target::Fail, Target::Next);
                }
            }
        }
    }
    b.push(stmt(RET_K, rule.action));
    b.finish()
}

fn lookup(table: &[(&str, u32)], name: &str) -> Option<u32> {
    table
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| table[i].1)
}

fn section(
    seccomp: &LinuxSeccomp,
    table: &[(&str, u32)],
    nr_bias: u32,
    default: u32,
) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let mut rules: Vec<Rule<'_>> = Vec::new();
    for sc in seccomp.syscalls().iter().flatten() {
        let action = action_code(sc.action(), sc.errno_ret())?;
        for name in sc.names() {
            if let Some(nr) = lookup(table, name) {
                rules.push(Rule {
                    nr: nr | nr_bias,
                    name,
                    args: sc.args().as_deref().unwrap_or(&[]),
                    action,
                });
            }
        }
    }
    // Stable: rules for one syscall keep their order (conditional before catch-all).
    rules.sort_by_key(|r| r.nr);
    rules.retain(|r| !(r.action == default && r.args.is_empty()));
    // Group by syscall number, then search the numbers with a binary tree (a handful of
    // comparisons per syscall instead of hundreds).
    let mut groups: Vec<&[Rule<'_>]> = Vec::new();
    let mut start = 0;
    for i in 1..=rules.len() {
        if i == rules.len() || rules[i].nr != rules[start].nr {
            if i > start {
                groups.push(&rules[start..i]);
            }
            start = i;
        }
    }
    tree(&nodes(&groups), default)
}

/// A leaf entry of the search tree: a run of consecutive syscall numbers with the same
/// unconditional action (one range check for what Docker's allow list has by the dozen),
/// or the rules of one number.
enum Node<'a> {
    Range { lo: u32, hi: u32, action: u32 },
    Rules(&'a [Rule<'a>]),
}

impl Node<'_> {
    fn first(&self) -> u32 {
        match self {
            Node::Range { lo, .. } => *lo,
            Node::Rules(g) => g.first().map_or(0, |r| r.nr),
        }
    }
}

/// Merges consecutive numbers whose only rule is unconditional and has the same action.
/// The program is shorter (the kernel converts and JIT-compiles it at every container start)
/// and each syscall of the container passes fewer comparisons.
fn nodes<'a>(groups: &[&'a [Rule<'a>]]) -> Vec<Node<'a>> {
    let mut out: Vec<Node<'a>> = Vec::new();
    for g in groups {
        let simple = match g {
            [r] if r.args.is_empty() => Some((r.nr, r.action)),
            _ => None,
        };
        match (simple, out.last_mut()) {
            (Some((nr, action)), Some(Node::Range { hi, action: a, .. }))
                if *a == action && hi.checked_add(1) == Some(nr) =>
            {
                *hi = nr;
            }
            (Some((nr, action)), _) => out.push(Node::Range {
                lo: nr,
                hi: nr,
                action,
            }),
            (None, _) => out.push(Node::Rules(g)),
        }
    }
    out
}

fn range_block(lo: u32, hi: u32, action: u32) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let mut b = Block { insns: Vec::new() };
    if lo == hi {
        b.cond(JEQ_K, lo, Target::Next, Target::Fail);
    } else {
        b.cond(JGE_K, lo, Target::Next, Target::Fail);
        b.cond(JGT_K, hi, Target::Fail, Target::Next);
    }
    b.push(stmt(RET_K, action));
    b.finish()
}

/// Syscall numbers per leaf of the search tree, compared one after the other.
const LEAF: usize = 4;

/// Emits the search over `groups` (sorted by number): the accumulator holds the number on
/// entry and every path ends in a `ret`.
fn tree(groups: &[Node<'_>], default: u32) -> Result<Vec<libc::sock_filter>, SeccompError> {
    if groups.len() <= LEAF {
        let mut out = Vec::new();
        let mut acc_dirty = false;
        for node in groups {
            let rules = match node {
                Node::Range { lo, hi, action } => {
                    if acc_dirty {
                        out.push(stmt(LD_W_ABS, OFF_NR));
                    }
                    out.extend(range_block(*lo, *hi, *action)?);
                    acc_dirty = false;
                    continue;
                }
                Node::Rules(g) => g,
            };
            for r in rules.iter() {
                // A failed argument check leaves an argument in the accumulator: reload.
                if acc_dirty {
                    out.push(stmt(LD_W_ABS, OFF_NR));
                }
                out.extend(rule_block(r)?);
                acc_dirty = !r.args.is_empty();
            }
        }
        out.push(stmt(RET_K, default));
        return Ok(out);
    }
    let mid = groups.len() / 2;
    let left = tree(&groups[..mid], default)?;
    let right = tree(&groups[mid..], default)?;
    // nr >= first number of the right half: jump over the left half.
    let mut out = vec![
        jump(JGE_K, groups[mid].first(), 0, 1),
        stmt(JA, left.len() as u32),
    ];
    out.extend(left);
    out.extend(right);
    Ok(out)
}

/// Compiles an OCI seccomp section into a BPF program for x86 machines.
pub fn compile(seccomp: &LinuxSeccomp) -> Result<SeccompProgram, SeccompError> {
    let default = action_code(seccomp.default_action(), seccomp.default_errno_ret())?;
    let arches: Vec<Arch> = match seccomp.architectures() {
        Some(a) if !a.is_empty() => a.clone(),
        _ => vec![Arch::ScmpArchNative],
    };
    let has = |a: Arch| arches.contains(&a);
    let x86_64 = has(Arch::ScmpArchX86_64) || has(Arch::ScmpArchNative);
    let x32 = has(Arch::ScmpArchX32);
    let i386 = has(Arch::ScmpArchX86);
    if !(x86_64 || x32 || i386) {
        return Err(SeccompError::NoArch);
    }
    let mut prog = vec![stmt(LD_W_ABS, OFF_ARCH)];
    // Layout: arch checks jumping (via JA) to the sections, which follow.
    let s64 = if x86_64 || x32 {
        let mut s = vec![stmt(LD_W_ABS, OFF_NR)];
        let native = if x86_64 {
            section(seccomp, table::X86_64, 0, default)?
        } else {
            vec![stmt(RET_K, default)]
        };
        if x32 {
            let x = section(seccomp, table::X32, X32_SYSCALL_BIT, default)?;
            s.push(jump(JGE_K, X32_SYSCALL_BIT, 0, 1));
            s.push(stmt(JA, native.len() as u32));
            s.extend(native);
            s.extend(x);
        } else {
            // x32 syscalls of a profile without x32 match nothing below: default action.
            s.extend(native);
        }
        Some(s)
    } else {
        None
    };
    let s32 = if i386 {
        let mut s = vec![stmt(LD_W_ABS, OFF_NR)];
        s.extend(section(seccomp, table::I386, 0, default)?);
        Some(s)
    } else {
        None
    };
    // Arch dispatch: [jeq x86_64 ; ja s64] [jeq i386 ; ja s32] ret kill.
    let mut dispatch = Vec::new();
    let n_checks = s64.is_some() as usize + s32.is_some() as usize;
    let dispatch_len = n_checks * 2 + 1;
    let mut offset_to_section = dispatch_len; // from the start of dispatch
    let mut pos = 0;
    if let Some(s) = &s64 {
        dispatch.push(jump(JEQ_K, AUDIT_ARCH_X86_64, 0, 1));
        dispatch.push(stmt(JA, (offset_to_section - pos - 2) as u32));
        pos += 2;
        offset_to_section += s.len();
    }
    if s32.is_some() {
        dispatch.push(jump(JEQ_K, AUDIT_ARCH_I386, 0, 1));
        dispatch.push(stmt(JA, (offset_to_section - pos - 2) as u32));
    }
    dispatch.push(stmt(RET_K, RET_KILL_PROCESS));
    prog.extend(dispatch);
    prog.extend(s64.into_iter().flatten());
    prog.extend(s32.into_iter().flatten());
    if prog.len() > 4096 {
        return Err(SeccompError::TooLong(prog.len()));
    }
    let mut flags = 0;
    for f in seccomp.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 1,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => 2,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => 4,
        };
    }
    Ok(SeccompProgram {
        instructions: prog,
        flags,
    })
}

/// Runs `prog` on one syscall, as the kernel would: a tiny BPF interpreter for tests.
#[cfg(test)]
pub(crate) fn simulate(prog: &[libc::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    loop {
        let ins = prog[pc];
        pc += 1;
        match ins.code {
            LD_W_ABS => {
                let k = ins.k as usize;
                acc = u32::from_le_bytes([data[k], data[k + 1], data[k + 2], data[k + 3]]);
            }
            AND_K => acc &= ins.k,
            JA => pc += ins.k as usize,
            JEQ_K | JGT_K | JGE_K => {
                let t = match ins.code {
                    JEQ_K => acc == ins.k,
                    JGT_K => acc > ins.k,
                    _ => acc >= ins.k,
                };
                pc += if t { ins.jt } else { ins.jf } as usize;
            }
            RET_K => return ins.k,
            c => panic!("unknown opcode {c:#x}"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxSeccompArgBuilder, LinuxSeccompBuilder, LinuxSyscallBuilder};

    const EPERM: u32 = RET_ERRNO | 1;

    fn nr(name: &str) -> u32 {
        lookup(table::X86_64, name).unwrap()
    }

    #[test]
    fn docker_profile_allows_the_allow_list_and_refuses_the_rest() {
        let p = compile(&default_seccomp()).unwrap();
        let run = |name: &str, a0: u64| {
            simulate(
                &p.instructions,
                AUDIT_ARCH_X86_64,
                nr(name),
                [a0, 0, 0, 0, 0, 0],
            )
        };
        assert_eq!(run("read", 0), RET_ALLOW);
        assert_eq!(run("execve", 0), RET_ALLOW);
        // berth execs every command through its sealed stub (`execveat` of a memfd; the
        // stub itself calls fcntl, execve, write and exit_group), after the filter is on.
        for name in ["execveat", "fcntl", "write", "exit_group"] {
            assert_eq!(run(name, 0), RET_ALLOW, "{name}");
        }
        assert_eq!(
            run("chroot", 0),
            RET_ALLOW,
            "CAP_SYS_CHROOT is a default capability"
        );
        assert_eq!(run("mount", 0), EPERM);
        assert_eq!(run("unshare", 0), EPERM);
        assert_eq!(run("keyctl", 0), EPERM);
        assert_eq!(run("init_module", 0), EPERM);
        assert_eq!(run("personality", 0), RET_ALLOW);
        assert_eq!(run("personality", 0xffff_ffff), RET_ALLOW);
        assert_eq!(run("personality", 0x1234), EPERM);
        assert_eq!(run("clone", libc::SIGCHLD as u64), RET_ALLOW);
        assert_eq!(run("clone", libc::CLONE_NEWUSER as u64), EPERM);
        assert_eq!(run("clone3", 0), RET_ERRNO | libc::ENOSYS as u32);
        // i386 and x32 sections use their own numbers.
        assert_eq!(
            simulate(&p.instructions, AUDIT_ARCH_I386, 11, [0; 6]),
            RET_ALLOW
        ); // execve
        assert_eq!(
            simulate(&p.instructions, AUDIT_ARCH_I386, 21, [0; 6]),
            EPERM
        ); // mount
        assert_eq!(
            simulate(
                &p.instructions,
                AUDIT_ARCH_X86_64,
                X32_SYSCALL_BIT | 520,
                [0; 6]
            ),
            RET_ALLOW
        ); // x32 execve
        assert_eq!(
            simulate(
                &p.instructions,
                AUDIT_ARCH_X86_64,
                X32_SYSCALL_BIT | 165,
                [0; 6]
            ),
            EPERM
        ); // x32 mount
        assert_eq!(
            simulate(&p.instructions, 0xc000_00b7, 0, [0; 6]),
            RET_KILL_PROCESS
        );
        // Runs of allowed numbers are one range check each: the program stays short (the
        // kernel converts and compiles it at every start).
        assert!(p.instructions.len() < 1000, "{}", p.instructions.len());
    }

    #[test]
    fn sys_admin_unlocks_mount_and_namespaces() {
        let mut caps = profile::docker_default_caps();
        caps.insert(oci_spec::runtime::Capability::SysAdmin);
        let p = compile(&default_seccomp_for(&caps)).unwrap();
        let run = |name: &str, a0: u64| {
            simulate(
                &p.instructions,
                AUDIT_ARCH_X86_64,
                nr(name),
                [a0, 0, 0, 0, 0, 0],
            )
        };
        assert_eq!(run("mount", 0), RET_ALLOW);
        assert_eq!(run("unshare", 0), RET_ALLOW);
        assert_eq!(run("clone", libc::CLONE_NEWUSER as u64), RET_ALLOW);
        assert_eq!(run("clone3", 0), RET_ALLOW);
    }

    #[test]
    fn argument_comparisons_cover_64_bits() {
        let mk = |op, v, v2: Option<u64>| {
            let mut a = LinuxSeccompArgBuilder::default()
                .index(1usize)
                .value(v)
                .op(op);
            if let Some(v2) = v2 {
                a = a.value_two(v2);
            }
            let s = LinuxSeccompBuilder::default()
                .default_action(LinuxSeccompAction::ScmpActErrno)
                .architectures(vec![Arch::ScmpArchX86_64])
                .syscalls(vec![LinuxSyscallBuilder::default()
                    .names(vec!["write".to_string()])
                    .action(LinuxSeccompAction::ScmpActAllow)
                    .args(vec![a.build().unwrap()])
                    .build()
                    .unwrap()])
                .build()
                .unwrap();
            compile(&s).unwrap()
        };
        let w = nr("write");
        let check = |p: &SeccompProgram, arg: u64| {
            simulate(&p.instructions, AUDIT_ARCH_X86_64, w, [0, arg, 0, 0, 0, 0]) == RET_ALLOW
        };
        let big = 0x1_0000_0005u64;
        type Check = fn(u64, u64) -> bool;
        let cases: Vec<(LinuxSeccompOperator, Check)> = vec![
            (LinuxSeccompOperator::ScmpCmpEq, |a, b| a == b),
            (LinuxSeccompOperator::ScmpCmpNe, |a, b| a != b),
            (LinuxSeccompOperator::ScmpCmpGt, |a, b| a > b),
            (LinuxSeccompOperator::ScmpCmpGe, |a, b| a >= b),
            (LinuxSeccompOperator::ScmpCmpLt, |a, b| a < b),
            (LinuxSeccompOperator::ScmpCmpLe, |a, b| a <= b),
        ];
        for (op, f) in cases {
            let p = mk(op, big, None);
            for arg in [0, 5, big - 1, big, big + 1, 0x2_0000_0000, u64::MAX] {
                assert_eq!(check(&p, arg), f(arg, big), "{op:?} arg {arg:#x}");
            }
        }
        let p = mk(
            LinuxSeccompOperator::ScmpCmpMaskedEq,
            0xff00_0000_00ff,
            Some(0x1200_0000_0034),
        );
        assert!(check(&p, 0x1234_5678_9a34));
        assert!(!check(&p, 0x1334_5678_9a34));
    }

    /// What the profile says for one call, evaluated directly from the OCI data.
    fn reference(s: &LinuxSeccomp, table: &[(&str, u32)], nr: u32, args: [u64; 6]) -> u32 {
        let default = action_code(s.default_action(), s.default_errno_ret()).unwrap();
        for sc in s.syscalls().iter().flatten() {
            if !sc.names().iter().any(|n| lookup(table, n) == Some(nr)) {
                continue;
            }
            let ok = sc.args().iter().flatten().all(|a| {
                let v = args[a.index()];
                match a.op() {
                    LinuxSeccompOperator::ScmpCmpEq => v == a.value(),
                    LinuxSeccompOperator::ScmpCmpNe => v != a.value(),
                    LinuxSeccompOperator::ScmpCmpLt => v < a.value(),
                    LinuxSeccompOperator::ScmpCmpLe => v <= a.value(),
                    LinuxSeccompOperator::ScmpCmpGt => v > a.value(),
                    LinuxSeccompOperator::ScmpCmpGe => v >= a.value(),
                    LinuxSeccompOperator::ScmpCmpMaskedEq => {
                        v & a.value() == a.value_two().unwrap_or(0)
                    }
                }
            });
            if ok {
                return action_code(sc.action(), sc.errno_ret()).unwrap();
            }
        }
        default
    }

    #[test]
    fn search_tree_agrees_with_the_profile_for_every_syscall() {
        let profile = default_seccomp();
        let p = compile(&profile).unwrap();
        for a0 in [0u64, 0x8, 0x20000, libc::CLONE_NEWNS as u64, 0xffff_ffff] {
            let args = [a0, 0, 0, 0, 0, 0];
            for nr in 0..600 {
                assert_eq!(
                    simulate(&p.instructions, AUDIT_ARCH_X86_64, nr, args),
                    reference(&profile, table::X86_64, nr, args),
                    "x86_64 {nr} {a0:#x}"
                );
                assert_eq!(
                    simulate(&p.instructions, AUDIT_ARCH_I386, nr, args),
                    reference(&profile, table::I386, nr, args),
                    "i386 {nr} {a0:#x}"
                );
                assert_eq!(
                    simulate(
                        &p.instructions,
                        AUDIT_ARCH_X86_64,
                        nr | X32_SYSCALL_BIT,
                        args
                    ),
                    reference(&profile, table::X32, nr, args),
                    "x32 {nr} {a0:#x}"
                );
            }
        }
    }
}
