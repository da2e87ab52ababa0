#pragma once
// The directory the front-end's fuzz targets log in against: the default topology (alice and bob
// on be1, carol and dave on be2, passwords "<user>-pw"), and its index, made once.

#include "exsim/common/topology.hpp"

namespace exsim::fuzz {

inline const common::topology& directory() {
    static const common::topology t = common::default_topology();
    return t;
}

inline const common::user_index& users() {
    static const common::user_index index(directory());
    return index;
}

}  // namespace exsim::fuzz
