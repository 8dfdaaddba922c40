//! The statements of one sync (at most [`MAX_SYNC_STATEMENTS`]) and the placement of items
//! while they fit, each item's rows remembered, or that it was deferred.

use super::super::db::Statement;
use super::MAX_SYNC_STATEMENTS;

/// The statements of one sync, with where each part's rows will be.
pub(super) struct Batch {
    pub(super) statements: Vec<Statement>,
}

impl Batch {
    pub(super) fn push(&mut self, statements: impl IntoIterator<Item = Statement>) -> usize {
        let at = self.statements.len();
        self.statements.extend(statements);
        at
    }

    fn room(&self, reserved: usize) -> usize {
        MAX_SYNC_STATEMENTS.saturating_sub(self.statements.len() + reserved)
    }
}

/// Where an item's rows are, or that it was deferred.
pub(super) type Placed = Option<usize>;

/// Places each item of a list while it fits, leaving `reserved` statements for what follows.
pub(super) fn place<T>(batch: &mut Batch, items: &[T], reserved: usize, statements: impl Fn(&T) -> Vec<Statement>) -> Vec<Placed> {
    place_where(batch, items, reserved, |_| true, statements, Vec::new())
}

/// Places the items that `chosen` picks while they fit, into `placed` (aligned with `items`;
/// empty: none placed yet), leaving the others as they were.
pub(super) fn place_where<T>(
    batch: &mut Batch,
    items: &[T],
    reserved: usize,
    chosen: impl Fn(&T) -> bool,
    statements: impl Fn(&T) -> Vec<Statement>,
    mut placed: Vec<Placed>,
) -> Vec<Placed> {
    placed.resize(items.len(), None);
    for (item, at) in items.iter().zip(placed.iter_mut()) {
        if at.is_none() && chosen(item) {
            let item_statements = statements(item);
            *at = (item_statements.len() <= batch.room(reserved)).then(|| batch.push(item_statements));
        }
    }
    placed
}
