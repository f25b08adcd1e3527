//! From encoded features to item vectors: item weights and folds ([`weights`]), the vector
//! layout, feature weighting and normalisation ([`vectors`]), and the feature weights learned
//! from the training items' routings with the calibrations of the tier ([`learn`]).

pub mod learn;
pub mod vectors;
pub mod weights;
