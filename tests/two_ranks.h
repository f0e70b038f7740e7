// A two-rank c10d job inside one test process (train/distributed.h): two threads, each
// joining a ProcessGroupGloo over loopback as one rank. For tests of the collectives and
// of what the trainers compute across ranks, without launching processes.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "train/distributed.h"

namespace r1kit::testing {

// A loopback port nothing listens on now (the kernel's pick, released at once).
inline int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// Runs `body(rank, group)` on two threads forming one two-rank job; returns when both
// are done (each waits for the other at the end).
inline void two_ranks(const std::function<void(int, train::DataParallel&)>& body) {
  const int port = free_loopback_port();
  std::vector<std::unique_ptr<train::DataParallel>> groups(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&, r] {
      train::LaunchEnv env;
      env.rank = r;
      env.world_size = 2;
      env.master_port = port;
      env.launcher = "test";
      train::DistSection dist;
      dist.timeout_s = 30;
      auto g = train::connect(env, dist);
      ASSERT_TRUE(g.ok()) << g.status().to_string();
      groups[r] = std::move(*g);
      body(r, *groups[r]);
      groups[r]->barrier();
    });
  for (auto& t : threads) t.join();
  groups[1].reset();  // rank 0 hosts the store: it goes last
  groups[0].reset();
}

}  // namespace r1kit::testing
