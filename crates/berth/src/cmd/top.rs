//! `top`: the processes of a running container.

use clap::Args;

use super::GlobalOpts;

/// `top CONTAINER [ps OPTIONS]`
#[derive(Debug, Args)]
pub struct TopArgs {
    /// The container.
    pub container: String,
    /// ps options (accepted; the columns are those of `ps -ef`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

/// Prints the process table.
pub fn run(g: &GlobalOpts, a: TopArgs) -> anyhow::Result<i32> {
    let lc = super::container::lifecycle(g)?;
    let t = match lc.find(&a.container).and_then(|c| lc.top(&c)) {
        Ok(t) => t,
        Err(e) => return Ok(super::container::daemon_error(&e)),
    };
    let mut widths: Vec<usize> = t.titles.iter().map(|s| s.len()).collect();
    for row in &t.processes {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.len());
            }
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == cells.len() {
                    c.clone()
                } else {
                    // Docker's tabwriter for `top`: at least 20 wide, 3 spaces of padding.
                    format!("{c:<w$}", w = (widths[i] + 3).max(20))
                }
            })
            .collect::<String>()
    };
    println!("{}", line(&t.titles));
    for row in &t.processes {
        println!("{}", line(row));
    }
    Ok(0)
}
