// Checks of the OpenAI API's answers, for the tests of `troupe node --http`: a request whose
// JSON answer must come with a given status, and streamed answers whose server-sent events are
// parsed and checked on the way. Catch2 assertions: call them from a test case's own thread.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "support/http.hpp"

namespace troupe::test {

// POSTs `body`; requires the status and a JSON answer, and returns it.
nlohmann::json post(int port, const std::string& path, const nlohmann::json& body, int expect_status = 200,
                    const HttpHeaders& headers = {});

struct Streamed {
  std::string text;
  std::string finish_reason;
  nlohmann::json usage;
  std::size_t pieces = 0;     // events that carried text
  std::size_t transfers = 0;  // HTTP chunks it came in
};

// A streamed answer, its SSE framing checked on the way: every event but the last is a JSON
// chunk of the endpoint's object type, the finish reason comes last, then "[DONE]".
// (The request and the checks are apart because Catch2 takes assertions on its own thread only.)
HttpResponse request_stream(int port, const std::string& path, nlohmann::json body);
Streamed check_stream(const std::string& path, const HttpResponse& r);
Streamed stream(int port, const std::string& path, const nlohmann::json& body);

// A streamed /v1/responses answer, its events checked on the way: each named as its "type" says,
// numbered from 0; the text of its deltas equals the text of the done event and of the response
// in the last event (response.completed or response.incomplete), which is returned whole.
struct StreamedResponse {
  std::string text;
  nlohmann::json response;
  std::vector<std::string> types;  // of every event, in order
  std::size_t pieces = 0;          // deltas
};
StreamedResponse stream_response(int port, const nlohmann::json& body);

// The text of an answer, completion or chat.
std::string text_of(const nlohmann::json& answer);

}  // namespace troupe::test
