//! `rename`: a container's new name, checked and taken in one statement.

use super::options::validate_name;
use super::{Container, ContainerError, Lifecycle, Result};

impl Lifecycle {
    /// Renames `c` to `new_name` (Docker's rules and errors; the event carries `oldName`).
    pub fn rename_container(&self, c: &Container, new_name: &str) -> Result<()> {
        if new_name.is_empty() {
            return Err(ContainerError::Option(super::OptionError::Conflict(
                "Neither old nor new names may be empty".into(),
            )));
        }
        let name = validate_name(new_name)?;
        if name == c.name() {
            return Err(ContainerError::BadStatus(
                "Renaming a container with the same name as its current name".into(),
            ));
        }
        self.store().rename_container(c.id(), &name)?;
        let mut ev =
            crate::events::container_event(c, "rename").attr("oldName", format!("/{}", c.name()));
        ev.actor.attributes.insert("name".into(), name);
        crate::events::emit(self.root(), ev);
        Ok(())
    }
}
