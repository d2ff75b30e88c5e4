//! `berth-exec`: the sealed exec stub, a program of its own (not a module of the crate).
//!
//! `build.rs` compiles this file with `$RUSTC` into a static, `no_std` executable of a few
//! KB, which the crate embeds ([`crate::sys::EXEC_STUB`]). A container's process is never
//! exec'd straight from berth's own (forked) image: berth copies the stub into a sealed
//! memfd and `execveat`s that, and the stub execs the container's command. So whatever the
//! kernel resolves as `/proc/self/exe` in the moment of that exec (a script whose
//! interpreter is `/proc/self/exe`: CVE-2019-5736) is the sealed stub, never the host's
//! berth binary, and no process in a container ever holds a path to berth's binary.
//!
//! Usage (berth's child calls it; on its own it only exits 127):
//!
//! ```text
//! berth-exec ERRFD PATH ARG0 [ARG...]
//! ```
//!
//! It sets close-on-exec on ERRFD (so end of file there means the exec happened), execs
//! PATH with ARG0... and the inherited environment, and when that fails writes berth's
//! init failure record to ERRFD (`E`, the errno as 4 little-endian bytes, then
//! `exec-not-found ARG0`, `exec-not-executable ARG0` or `exec ARG0`: what
//! `container/init.rs` `decode_failure` reads) and exits 127.
//!
//! Raw syscalls for x86_64 and aarch64; nothing else is linked in.
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const WRITE: usize = 1;
    pub const FCNTL: usize = 72;
    pub const EXECVE: usize = 59;
    pub const EXIT_GROUP: usize = 231;
}

#[cfg(target_arch = "aarch64")]
mod nr {
    pub const WRITE: usize = 64;
    pub const FCNTL: usize = 25;
    pub const EXECVE: usize = 221;
    pub const EXIT_GROUP: usize = 94;
}

const F_SETFD: usize = 2;
const FD_CLOEXEC: usize = 1;
const ENOENT: isize = 2;
const ENOEXEC: isize = 8;
const EACCES: isize = 13;
const EINTR: isize = 4;
const EXIT_FAILED: usize = 127;

// The entry point: the kernel leaves argc, argv..., NULL, envp..., NULL at the stack
// pointer. Pass that pointer to `stub_main` on a 16-byte aligned stack.
#[cfg(target_arch = "x86_64")]
global_asm!(
    ".globl _start",
    "_start:",
    "xor ebp, ebp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {main}",
    "ud2",
    main = sym stub_main,
);

#[cfg(target_arch = "aarch64")]
global_asm!(
    ".globl _start",
    "_start:",
    "mov x29, xzr",
    "mov x30, xzr",
    "mov x0, sp",
    "bl {main}",
    "udf #0",
    main = sym stub_main,
);

#[cfg(target_arch = "x86_64")]
unsafe fn syscall3(n: usize, a: usize, b: usize, c: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller passes arguments valid for syscall `n`; the kernel clobbers only
    // rcx and r11 besides the return register.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

#[cfg(target_arch = "aarch64")]
unsafe fn syscall3(n: usize, a: usize, b: usize, c: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller passes arguments valid for syscall `n`; `svc 0` returns in x0.
    unsafe {
        asm!(
            "svc 0",
            in("x8") n,
            inlateout("x0") a as isize => ret,
            in("x1") b,
            in("x2") c,
            options(nostack),
        );
    }
    ret
}

fn exit(code: usize) -> ! {
    loop {
        // SAFETY: exit_group takes an integer and does not return.
        unsafe {
            syscall3(nr::EXIT_GROUP, code, 0, 0);
        }
    }
}

/// Writes all `len` bytes at `buf` to `fd` (a pipe: short writes and EINTR are retried).
fn write_all(fd: usize, mut buf: *const u8, mut len: usize) {
    while len > 0 {
        // SAFETY: `buf` points at `len` readable bytes.
        let n = unsafe { syscall3(nr::WRITE, fd, buf as usize, len) };
        if n == -EINTR {
            continue;
        }
        if n <= 0 {
            return;
        }
        // SAFETY: n <= len bytes were written, so the pointer stays within the buffer.
        buf = unsafe { buf.add(n as usize) };
        len -= n as usize;
    }
}

fn write_str(fd: usize, s: &[u8]) {
    write_all(fd, s.as_ptr(), s.len());
}

/// Length of the NUL-terminated string at `s`.
///
/// # Safety
/// `s` must point at a NUL-terminated string.
unsafe fn c_len(s: *const u8) -> usize {
    let mut n = 0;
    // A volatile read, or LLVM turns the loop into a call to the C library's strlen,
    // which is not linked in.
    // SAFETY: the string is NUL-terminated, so every byte up to the NUL is readable.
    while unsafe { core::ptr::read_volatile(s.add(n)) } != 0 {
        n += 1;
    }
    n
}

/// Parses a decimal descriptor number; `None` for anything else.
///
/// # Safety
/// `s` must point at a NUL-terminated string.
unsafe fn parse_fd(s: *const u8) -> Option<usize> {
    // SAFETY: as for c_len.
    let len = unsafe { c_len(s) };
    if len == 0 || len > 9 {
        return None;
    }
    let mut v = 0usize;
    for i in 0..len {
        // SAFETY: i < len, within the string.
        let c = unsafe { *s.add(i) };
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as usize;
    }
    Some(v)
}

fn usage() -> ! {
    write_str(
        2,
        b"berth-exec: berth's exec stub, not a command of its own\n",
    );
    exit(EXIT_FAILED)
}

/// # Safety
/// `sp` is the initial stack pointer the kernel set up for a new program.
unsafe extern "C" fn stub_main(sp: *const usize) -> ! {
    // SAFETY: the kernel's initial stack: argc, then argc argument pointers and a NULL,
    // then the environment pointers and a NULL.
    let (argc, argv) = unsafe { (*sp, sp.add(1) as *const *const u8) };
    if argc < 4 {
        usage();
    }
    // SAFETY: argc >= 4, so argv[0..4] are valid string pointers; envp follows argv's NULL.
    let (errfd, path, args, arg0, envp) = unsafe {
        (
            parse_fd(*argv.add(1)),
            *argv.add(2),
            argv.add(3),
            *argv.add(3),
            argv.add(argc + 1),
        )
    };
    let Some(errfd) = errfd else { usage() };
    // SAFETY: fcntl takes integers. A bad descriptor only makes the report below fail.
    unsafe {
        syscall3(nr::FCNTL, errfd, F_SETFD, FD_CLOEXEC);
    }
    // SAFETY: path, args and envp are the NUL-terminated strings and NULL-terminated
    // arrays the kernel gave us; execve returns only on failure.
    let ret = unsafe { syscall3(nr::EXECVE, path as usize, args as usize, envp as usize) };
    let errno = (-ret) as i32;
    let mut head = [b'E', 0, 0, 0, 0];
    let le = errno.to_le_bytes();
    head[1] = le[0];
    head[2] = le[1];
    head[3] = le[2];
    head[4] = le[3];
    write_str(errfd, &head);
    let step: &[u8] = match -ret {
        ENOENT => b"exec-not-found ",
        EACCES | ENOEXEC => b"exec-not-executable ",
        _ => b"exec ",
    };
    write_str(errfd, step);
    // SAFETY: arg0 is a NUL-terminated argument string.
    write_all(errfd, arg0, unsafe { c_len(arg0) });
    exit(EXIT_FAILED)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    exit(EXIT_FAILED)
}
