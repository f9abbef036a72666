//! The checks on placement labels (`labels "gpu" …` on a runner or a
//! transport).

use crate::hash::HashSet;

use super::Checker;
use crate::code::Code;
use crate::diagnostic::Finding;
use crate::model::*;

impl Checker<'_> {
    /// Each runner's and transport's labels name each label once (the
    /// decoder has already refused an empty one).
    pub(super) fn labels(&mut self) {
        let lists: Vec<(&str, &Name, &[Spanned<String>])> = self
            .p
            .runners
            .iter()
            .map(|r| ("runner", &r.name, r.labels.as_slice()))
            .chain(
                self.p
                    .transports
                    .iter()
                    .map(|t| ("transport", &t.name, t.labels.as_slice())),
            )
            .collect();
        for (what, name, labels) in lists {
            let mut seen = HashSet::default();
            for l in labels {
                if !seen.insert(l.value.as_str()) {
                    self.push(
                        Finding::new(
                            Code::DuplicateLabel,
                            l.span,
                            format!(
                                "label `{}` is given twice on {what} `{}`",
                                l.value, name.value
                            ),
                        )
                        .label("second mention")
                        .help("name each label once"),
                    );
                }
            }
        }
    }
}
