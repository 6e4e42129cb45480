//! [`Directory`]: the businesses and agents this process serves (from the configuration).

use flows::{AgentId, BusinessId, Target};

/// A business whose visitors are called back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessEntry {
    /// Its id.
    pub id: BusinessId,
    /// Its display name (shown to the customer as the caller's name).
    pub name: String,
}

/// An agent (CSR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentEntry {
    /// Its id.
    pub id: AgentId,
    /// Where it is called.
    pub contact: Target,
    /// The businesses it serves.
    pub businesses: Vec<BusinessId>,
}

/// Businesses (in configuration order: the first is the page's default) and agents.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Directory {
    /// The businesses.
    pub businesses: Vec<BusinessEntry>,
    /// The agents.
    pub agents: Vec<AgentEntry>,
}

impl Directory {
    /// A business by id.
    #[must_use]
    pub fn business(&self, id: &BusinessId) -> Option<&BusinessEntry> {
        self.businesses.iter().find(|b| &b.id == id)
    }

    /// An agent by id.
    #[must_use]
    pub fn agent(&self, id: &AgentId) -> Option<&AgentEntry> {
        self.agents.iter().find(|a| &a.id == id)
    }

    /// How many agents serve a business.
    #[must_use]
    pub fn agents_of(&self, business: &BusinessId) -> usize {
        self.agents
            .iter()
            .filter(|a| a.businesses.contains(business))
            .count()
    }
}
