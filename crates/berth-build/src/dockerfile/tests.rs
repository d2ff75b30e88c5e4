use super::*;

fn p(src: &str) -> Dockerfile {
    match parse(src, "Dockerfile") {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    }
}

fn e(src: &str) -> ParseError {
    parse(src, "Dockerfile").expect_err("should fail")
}

fn kinds(src: &str) -> Vec<InstructionKind> {
    p(src).stages[0]
        .instructions
        .iter()
        .map(|i| i.kind.clone())
        .collect()
}

fn one(src: &str) -> InstructionKind {
    kinds(&format!("FROM scratch\n{src}")).remove(0)
}

#[test]
fn from_forms() {
    let d = p("FROM busybox\nFROM --platform=linux/amd64 alpine:3 AS Build\nFROM build\n");
    assert_eq!(d.stages.len(), 3);
    assert_eq!(d.stages[0].base, "busybox");
    assert_eq!(d.stages[1].platform.as_deref(), Some("linux/amd64"));
    assert_eq!(d.stages[1].name.as_deref(), Some("build"));
    assert_eq!(d.stages[2].index, 2);
    assert_eq!(d.stages[2].line, 3);
}

#[test]
fn from_errors() {
    assert!(e("FROM a AS b\nFROM c AS B\n")
        .message
        .contains("duplicate stage name"));
    assert!(e("FROM\n").message.contains("FROM requires"));
    assert!(e("FROM a b c d\n").message.contains("FROM takes"));
    assert!(e("FROM a AS 1x\n").message.contains("invalid stage name"));
    assert!(e("RUN x\n").message.contains("before FROM"));
    assert!(e("# just a comment\n").message.contains("no FROM"));
    assert!(e("FROM --plat=x a\n")
        .message
        .contains("unknown flag: --plat"));
}

#[test]
fn global_args() {
    let d = p("ARG V=1\nARG A B=2\nFROM busybox:${V}\n");
    assert_eq!(d.global_args.len(), 2);
    assert_eq!(
        d.global_args[1].kind,
        InstructionKind::Arg(vec![("A".into(), None), ("B".into(), Some("2".into()))])
    );
    assert_eq!(d.stages[0].base, "busybox:${V}");
}

#[test]
fn unknown_instruction_position() {
    let err = e("FROM busybox\n\n  RUNN echo\n");
    assert_eq!((err.line, err.column), (3, 3));
    assert_eq!(err.message, "unknown instruction \"RUNN\"");
    assert_eq!(err.source_line, "  RUNN echo");
    let shown = err.to_string();
    assert!(shown.starts_with("Dockerfile:3:3: unknown instruction \"RUNN\""));
    assert!(shown.contains("RUNN echo"));
}

#[test]
fn directives() {
    let d = p("# syntax=docker/dockerfile:1\n# escape=`\nFROM a\nRUN echo `\n  hi\n");
    assert_eq!(d.directives.escape, '`');
    assert_eq!(d.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(
        d.stages[0].instructions[0].kind,
        InstructionKind::Run(Run {
            command: CommandForm::Shell("echo   hi".into()),
            mounts: vec![],
            network: None,
            security: None,
            heredocs: vec![]
        })
    );
    // After a comment, directives are plain comments.
    let d = p("# hello\n# escape=`\nFROM a\nRUN echo \\\n hi\n");
    assert_eq!(d.directives.escape, '\\');
    assert!(e("# escape=x\nFROM a\n").message.contains("invalid escape"));
    assert!(e("# escape=`\n# escape=\\\nFROM a\n")
        .message
        .contains("only one escape"));
    let d = p("# check=skip=all\nFROM a\n");
    assert_eq!(d.directives.check.as_deref(), Some("skip=all"));
}

#[test]
fn comments_and_continuations() {
    let k = kinds("FROM a\n# c\nRUN echo a \\\n# inner comment\n\n    b \\  \n  c\n   # indented comment\nCMD x\n");
    assert_eq!(k.len(), 2);
    match &k[0] {
        InstructionKind::Run(r) => {
            assert_eq!(r.command, CommandForm::Shell("echo a     b   c".into()))
        }
        other => panic!("{other:?}"),
    }
    let d = p("FROM a\r\nRUN x\r\n");
    assert_eq!(d.stages[0].instructions[0].text, "RUN x");
    // A continuation at end of file is tolerated.
    assert_eq!(kinds("FROM a\nRUN x \\\n").len(), 1);
}

#[test]
fn line_numbers_with_continuation() {
    let d = p("FROM a\nRUN a \\\n b\nCMD c\n");
    let i = &d.stages[0].instructions;
    assert_eq!((i[0].line, i[0].end_line), (2, 3));
    assert_eq!(i[1].line, 4);
    let err = e("FROM a\nRUN a \\\n --x\nRUN --bogus=1 x\n");
    assert_eq!((err.line, err.column), (4, 5));
}

#[test]
fn exec_and_shell_forms() {
    assert_eq!(
        one("CMD [\"a\", \"b c\"]"),
        InstructionKind::Cmd(CommandForm::Exec(vec!["a".into(), "b c".into()]))
    );
    assert_eq!(
        one("CMD echo $HOME"),
        InstructionKind::Cmd(CommandForm::Shell("echo $HOME".into()))
    );
    // Invalid JSON falls back to the shell form.
    assert_eq!(
        one("ENTRYPOINT [a, b]"),
        InstructionKind::Entrypoint(CommandForm::Shell("[a, b]".into()))
    );
    assert_eq!(
        one("ENTRYPOINT []"),
        InstructionKind::Entrypoint(CommandForm::Exec(vec![]))
    );
    assert!(e("FROM a\nCMD\n").message.contains("CMD requires"));
}

#[test]
fn run_flags() {
    match one("RUN --mount=type=secret,id=tok --mount=type=cache,target=/root/.cache --network=none --mount=type=bind,from=build,source=/out,target=/in cat /run/secrets/tok") {
        InstructionKind::Run(r) => {
            assert_eq!(r.network.as_deref(), Some("none"));
            assert_eq!(r.mounts.len(), 3);
            assert_eq!(
                r.mounts[0],
                Mount::Secret { id: "tok".into(), target: "/run/secrets/tok".into(), required: false, mode: 0o400, uid: 0, gid: 0 }
            );
            assert!(matches!(&r.mounts[1], Mount::Cache { target, id, .. } if target == "/root/.cache" && id == "/root/.cache"));
            assert!(matches!(&r.mounts[2], Mount::Bind { from: Some(f), source, .. } if f == "build" && source == "/out"));
            assert_eq!(r.command, CommandForm::Shell("cat /run/secrets/tok".into()));
        }
        other => panic!("{other:?}"),
    }
    match one("RUN --mount=type=secret,target=/etc/key,required x") {
        InstructionKind::Run(r) => {
            assert!(matches!(&r.mounts[0], Mount::Secret { id, required: true, .. } if id == "key"))
        }
        other => panic!("{other:?}"),
    }
    assert!(e("FROM a\nRUN --network=bridge x\n")
        .message
        .contains("invalid --network"));
    assert!(e("FROM a\nRUN --mount=type=nfs,target=/x x\n")
        .message
        .contains("unsupported --mount type"));
    assert!(e("FROM a\nRUN --mount=type=cache x\n")
        .message
        .contains("needs target"));
    assert!(e("FROM a\nRUN --mount=type=secret,id=a,bogus=1 x\n")
        .message
        .contains("unknown --mount option"));
    assert!(e("FROM a\nRUN --network=none\n")
        .message
        .contains("RUN requires"));
}

#[test]
fn heredoc_run() {
    match one("RUN <<EOF\necho a\necho b\nEOF\n") {
        InstructionKind::Run(r) => {
            assert_eq!(r.command, CommandForm::Shell("echo a\necho b\n".into()));
            assert_eq!(r.heredocs.len(), 1);
            assert!(r.heredocs[0].expand);
        }
        other => panic!("{other:?}"),
    }
    match one("RUN cat <<-'A' > /a && cat <<\"B\" > /b\n\t\tone $x\n\tA\ntwo\nB\n") {
        InstructionKind::Run(r) => {
            assert_eq!(r.heredocs.len(), 2);
            assert_eq!(r.heredocs[0].content, "one $x\n");
            assert!(r.heredocs[0].strip_tabs && !r.heredocs[0].expand);
            assert_eq!(r.heredocs[1].content, "two\n");
            assert_eq!(
                r.command,
                CommandForm::Shell(
                    "cat <<-'A' > /a && cat <<\"B\" > /b\none $x\nA\ntwo\nB\n".into()
                )
            );
        }
        other => panic!("{other:?}"),
    }
    let d = p("FROM a\nRUN <<EOF\nx\nEOF\nCMD y\n");
    let i = &d.stages[0].instructions;
    assert_eq!((i[0].line, i[0].end_line), (2, 4));
    assert_eq!(i[1].line, 5);
}

#[test]
fn heredoc_errors() {
    let err = e("FROM a\nRUN <<EOF\necho\n");
    assert_eq!((err.line, err.column), (2, 5));
    assert!(err.message.contains("unterminated heredoc"));
    // `<<` without a word is not a heredoc.
    assert_eq!(kinds("FROM a\nRUN echo a << b\n").len(), 1);
}

#[test]
fn heredoc_copy() {
    match one("COPY <<EOF /etc/motd\nhello $NAME\nEOF\n") {
        InstructionKind::Copy(c) => {
            assert!(c.sources.is_empty());
            assert_eq!(c.dest, "/etc/motd");
            assert_eq!(c.heredocs[0].content, "hello $NAME\n");
        }
        other => panic!("{other:?}"),
    }
    match one("COPY <<a.sh <<b.sh /bin/\nA\na.sh\nB\nb.sh\n") {
        InstructionKind::Copy(c) => {
            assert_eq!(c.heredocs.len(), 2);
            assert_eq!(c.heredocs[1].name, "b.sh");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn copy_and_add_flags() {
    match one("COPY --from=build --chown=1:2 --chmod=0755 --link --exclude=*.md --exclude=x --parents a b /dst/") {
        InstructionKind::Copy(c) => {
            assert_eq!(c.sources, vec!["a", "b"]);
            assert_eq!(c.dest, "/dst/");
            assert_eq!(c.from.as_deref(), Some("build"));
            assert_eq!(c.chown.as_deref(), Some("1:2"));
            assert_eq!(c.chmod.as_deref(), Some("0755"));
            assert!(c.link && c.parents);
            assert_eq!(c.exclude, vec!["*.md", "x"]);
        }
        other => panic!("{other:?}"),
    }
    match one("COPY [\"a b\", \"/c d/\"]") {
        InstructionKind::Copy(c) => {
            assert_eq!(c.sources, vec!["a b"]);
            assert_eq!(c.dest, "/c d/");
        }
        other => panic!("{other:?}"),
    }
    match one("ADD --keep-git-dir --checksum=sha256:abc https://x/y.tar /") {
        InstructionKind::Add(c) => {
            assert!(c.keep_git_dir);
            assert_eq!(c.checksum.as_deref(), Some("sha256:abc"));
        }
        other => panic!("{other:?}"),
    }
    assert!(e("FROM a\nCOPY onlyone\n")
        .message
        .contains("COPY requires"));
    assert!(e("FROM a\nADD --from=x a b\n")
        .message
        .contains("unknown flag: --from"));
}

#[test]
fn env_and_label() {
    assert_eq!(
        one("ENV A=1 B=\"two words\" C=three\\ x"),
        InstructionKind::Env(vec![
            ("A".into(), "1".into()),
            ("B".into(), "\"two words\"".into()),
            ("C".into(), "three\\ x".into())
        ])
    );
    assert_eq!(
        one("ENV PATH /usr/bin:/bin and more"),
        InstructionKind::Env(vec![("PATH".into(), "/usr/bin:/bin and more".into())])
    );
    assert_eq!(
        one("LABEL \"com.example.vendor\"=\"ACME\" version=1.0"),
        InstructionKind::Label(vec![
            ("\"com.example.vendor\"".into(), "\"ACME\"".into()),
            ("version".into(), "1.0".into())
        ])
    );
    assert!(e("FROM a\nENV A\n").message.contains("requires a value"));
    assert!(e("FROM a\nENV A=1 B\n").message.contains("name=value"));
    assert!(e("FROM a\nENV =1\n").message.contains("blank"));
    assert!(e("FROM a\nLABEL a\n").message.contains("name=value"));
}

#[test]
fn simple_instructions() {
    assert_eq!(
        one("MAINTAINER Kelsey <k@x>"),
        InstructionKind::Maintainer("Kelsey <k@x>".into())
    );
    assert_eq!(
        one("EXPOSE 8080 53/udp"),
        InstructionKind::Expose(vec!["8080".into(), "53/udp".into()])
    );
    assert_eq!(
        one("VOLUME [\"/data\", \"/logs\"]"),
        InstructionKind::Volume(vec!["/data".into(), "/logs".into()])
    );
    assert_eq!(
        one("VOLUME /a /b"),
        InstructionKind::Volume(vec!["/a".into(), "/b".into()])
    );
    assert_eq!(one("USER app:app"), InstructionKind::User("app:app".into()));
    assert_eq!(
        one("WORKDIR /src/$X"),
        InstructionKind::Workdir("/src/$X".into())
    );
    assert_eq!(
        one("STOPSIGNAL SIGTERM"),
        InstructionKind::Stopsignal("SIGTERM".into())
    );
    assert_eq!(
        one("SHELL [\"/bin/bash\", \"-c\"]"),
        InstructionKind::Shell(vec!["/bin/bash".into(), "-c".into()])
    );
    assert!(e("FROM a\nSHELL /bin/bash -c\n")
        .message
        .contains("JSON form"));
    assert_eq!(one("ARG X"), InstructionKind::Arg(vec![("X".into(), None)]));
    assert!(e("FROM a\nARG a-b\n").message.contains("invalid ARG name"));
    assert!(e("FROM a\nUSER\n").message.contains("USER requires"));
    assert_eq!(
        one("run echo lower"),
        InstructionKind::Run(Run {
            command: CommandForm::Shell("echo lower".into()),
            mounts: vec![],
            network: None,
            security: None,
            heredocs: vec![]
        })
    );
}

#[test]
fn onbuild() {
    assert_eq!(
        one("ONBUILD RUN echo hi"),
        InstructionKind::Onbuild("RUN echo hi".into())
    );
    assert!(e("FROM a\nONBUILD ONBUILD RUN x\n")
        .message
        .contains("chaining ONBUILD"));
    assert!(e("FROM a\nONBUILD FROM x\n")
        .message
        .contains("isn't allowed"));
    assert!(e("FROM a\nONBUILD BLAH x\n")
        .message
        .contains("unknown instruction"));
}

#[test]
fn healthcheck() {
    assert_eq!(
        one("HEALTHCHECK NONE"),
        InstructionKind::Healthcheck(Healthcheck::None)
    );
    assert_eq!(
        one("HEALTHCHECK --interval=5m --timeout=3s --retries=3 --start-period=1m30s CMD curl -f http://localhost/ || exit 1"),
        InstructionKind::Healthcheck(Healthcheck::Cmd {
            command: CommandForm::Shell("curl -f http://localhost/ || exit 1".into()),
            interval: Some(300_000_000_000),
            timeout: Some(3_000_000_000),
            start_period: Some(90_000_000_000),
            start_interval: None,
            retries: Some(3),
        })
    );
    assert!(e("FROM a\nHEALTHCHECK --interval=abc CMD x\n")
        .message
        .contains("duration"));
    assert!(e("FROM a\nHEALTHCHECK echo\n").message.contains("NONE or"));
    assert!(e("FROM a\nHEALTHCHECK NONE x\n")
        .message
        .contains("no arguments"));
}

#[test]
fn durations() {
    assert_eq!(parse_duration("1h2m3s"), Some(3_723_000_000_000));
    assert_eq!(parse_duration("500ms"), Some(500_000_000));
    assert_eq!(parse_duration("1.5s"), Some(1_500_000_000));
    assert_eq!(parse_duration("5"), None);
    assert_eq!(parse_duration("5x"), None);
}
