// Translation unit that carries the shared precompiled header (cmake/r1kit.cmake).
