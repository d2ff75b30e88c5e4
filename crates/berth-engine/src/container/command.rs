//! ENTRYPOINT and CMD: what the container runs, combined as Docker does.

/// The argv of the container's process.
///
/// - `--entrypoint X` replaces the image's ENTRYPOINT and drops the image's CMD;
///   `--entrypoint ""` clears it.
/// - Arguments after the image replace the image's CMD.
/// - The result is ENTRYPOINT followed by CMD.
pub fn combine(
    image_entrypoint: &[String],
    image_cmd: &[String],
    entrypoint_flag: Option<&str>,
    args: &[String],
) -> Vec<String> {
    let entrypoint: Vec<String> = match entrypoint_flag {
        Some("") => Vec::new(),
        Some(e) => vec![e.to_string()],
        None => image_entrypoint.to_vec(),
    };
    let cmd: Vec<String> = if !args.is_empty() {
        args.to_vec()
    } else if entrypoint_flag.is_some() {
        Vec::new()
    } else {
        image_cmd.to_vec()
    };
    entrypoint.into_iter().chain(cmd).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn docker_rules() {
        assert_eq!(combine(&[], &v(&["sh"]), None, &[]), v(&["sh"]));
        assert_eq!(combine(&[], &v(&["sh"]), None, &v(&["ls"])), v(&["ls"]));
        assert_eq!(
            combine(&v(&["/kuard"]), &v(&["--x"]), None, &[]),
            v(&["/kuard", "--x"])
        );
        assert_eq!(
            combine(&v(&["/kuard"]), &v(&["--x"]), None, &v(&["--y"])),
            v(&["/kuard", "--y"])
        );
        assert_eq!(
            combine(&v(&["/kuard"]), &v(&["--x"]), Some("sh"), &[]),
            v(&["sh"])
        );
        assert_eq!(
            combine(&v(&["/kuard"]), &v(&["--x"]), Some(""), &v(&["ls"])),
            v(&["ls"])
        );
        assert!(combine(&[], &[], None, &[]).is_empty());
    }
}
